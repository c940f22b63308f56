"""The domain rules with a database and a settings object (no app), the statements, the migrations,
the settings, and the repository's own promises."""
