"""The jobs listing's filters (status, agent_name; the console's tabs): an index that keeps a
filtered page one index search per status, newest first."""


def apply(database, migrator):
    migrator.add_index("job", ("runner_id", "agent_name", "status", "seq"), False).run()
