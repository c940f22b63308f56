"""Real servers, the real `opik` CLI, Chromium, PostgreSQL: marked slow (conftest.py)."""
