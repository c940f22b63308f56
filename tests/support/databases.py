"""A fresh database per test, on SQLite or on the PostgreSQL of TEST_DATABASE_URL, and what the
PostgreSQL tests ask of it."""
import os

# Set by .ci/run for the second pass: the whole suite against PostgreSQL.
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")


def fresh_database_url(tmp_path, name="test"):
    """An empty database: a new SQLite file, or the PostgreSQL test database wiped clean."""
    if not POSTGRES_URL:
        return f"sqlite:///{tmp_path / (name + '.db')}"
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()
    return POSTGRES_URL


def waiting_on_locks(database_url, like="%"):
    """How many sessions of the test database wait for a lock now in a statement LIKE `like` (on
    a connection of its own: a transaction sees pg_stat_activity as it first read it)."""
    import psycopg2

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE %s", (like,))
        return cur.fetchone()[0]
