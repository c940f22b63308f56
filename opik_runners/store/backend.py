"""The store's interface: what the domain, the control plane and the command ask of the
database, whichever it is. Each backend (sqlite.py, the embedded default; postgres.py, for
scale-out) is a peewee connection pool plus this class, and implements every method below;
nothing outside the store asks which backend it has.

As huey's BaseStorage does, every method is declared here with what it must do, and raises
NotImplementedError until a backend says how."""


class BackupUnsupported(Exception):
    """This backend has no online backup of its own; the message says what to use."""


class Backend:
    """Mixed into a peewee pooled database (`class SqliteBackend(Backend, PooledSqliteDatabase)`)."""

    kind = None  # "sqlite" or "postgresql", for people and logs
    watcher_class = None  # the thread that passes other processes' wake-ups on (wakeups.py)
    watcher = None

    # -- locks and claims

    def lock_rows(self, query):
        """`query` with the rows it reads locked against concurrent changes until the
        transaction ends: what a transaction reads before it changes them."""
        raise NotImplementedError

    def claim_rows(self, query):
        """`query` locking its rows as lock_rows does, but skipping rows another claim holds:
        concurrent claims each take different rows (exactly-once claims)."""
        raise NotImplementedError

    def hold_rows(self, query):
        """Lock the rows of `query` now, in primary-key order, until the transaction ends: what
        a write takes before it deletes many rows, so that it takes them in the order every
        other write does."""
        raise NotImplementedError

    def retrying_deadlocks(self, transaction):
        """Run `transaction()` (a function that opens and commits its own transaction), again if
        the database aborts it as one side of a deadlock: for writes that are safe to run twice
        and must not fail for that (a reset)."""
        raise NotImplementedError

    # -- wake-ups

    def notify(self, key):
        """Wake the long polls waiting on `key` (wakeups.py), in every process, once the
        caller's transaction commits."""
        raise NotImplementedError

    def prune_wakeups(self):
        """Delete what notify left behind that every watcher has read (the reaper calls it)."""
        raise NotImplementedError

    def start_watcher(self):
        """Start this process's watcher, which passes other processes' wake-ups on to this
        process's waiters. Call in the process that serves: a thread does not survive a fork."""
        if self.watcher is None:
            self.watcher = self.watcher_class(self)
            self.watcher.start()

    def stop_watcher(self):
        """Stop this process's watcher, if it runs."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    # -- connections and statements

    def hand_back_connection(self):
        """A long poll about to wait gives its connection back to the pool (the next query
        takes one again), so thousands of held polls need no connection each. A connection
        that a `connection_context` owns (a test, the command, the reaper) is left to it."""
        if not self.in_transaction() and not self._state.ctx:
            self.close()

    def execute_rows(self, sql, rows):
        """Run `sql` once for each tuple of parameters in `rows`, in as few round trips as the
        database allows; inside a transaction (no busy retry). Returns the cursor."""
        raise NotImplementedError

    def data_version(self):
        """A value that changes whenever anything is committed to the database, by any
        connection of any process; None where the database offers none (a read's answer then
        cannot be kept)."""
        return None

    def disk_full(self, error):
        """Whether a database error says the database's disk is full (507, not 503)."""
        raise NotImplementedError

    # -- schema changes, the maintenance lock, backups

    def serialize_schema_changes(self):
        """Inside a transaction: make processes that change the schema at once take turns."""
        raise NotImplementedError

    def exclusive(self, name):
        """A context manager yielding whether this caller now holds the lock `name`, which one
        process holds at a time and which is let go when its holder dies (the reaper's)."""
        raise NotImplementedError

    def backup(self, target):
        """Copy the live database to the file `target`, consistently, while it keeps serving;
        BackupUnsupported where the database has its own tool for that."""
        raise NotImplementedError

    def shut(self):
        """Stop the watcher and close every pooled connection (a test opening the next database)."""
        self.stop_watcher()
        self.close_all()

