"""What DATABASE_URL names, read without opening anything and without importing peewee: the
gunicorn master, and a worker before gevent has patched threading, read it too (serving.py
says why neither may import the database layer)."""

KINDS = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}


def kind_of(url):
    """"sqlite" or "postgresql" for a DATABASE_URL (peewee's db_url syntax); ValueError for
    anything else."""
    scheme, sep, _ = url.partition("://")
    kind = KINDS.get(scheme.split("+")[0]) if sep else None
    if kind is None:
        raise ValueError(f"DATABASE_URL must look like sqlite:///path or postgresql://..., got {url!r}")
    return kind


def make_driver_cooperative(url):
    """In a gevent worker, before it opens anything: PostgreSQL's driver (psycopg2) waits for
    the server in C, so its waits are made to yield to other greenlets. SQLite needs nothing:
    its calls are short, and its lock is waited for in Python (sqlite.py)."""
    if kind_of(url) == "postgresql":
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
