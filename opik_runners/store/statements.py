"""Named SQL statements, compiled once per backend and bound by parameter name.

peewee takes ~0.3 ms to turn a query into SQL, far more than SQLite takes to run
it, so each statement on a hot path (the listing, the claim, job writes) is one
`Statement`: a peewee query written once with named parameters (`p.runner_id`),
compiled on first use for the open backend, then run with values given by name:

    FIND_RUNNER = Statement("find runner", lambda p: Runner.select().where(Runner.id == p.runner_id))
    FIND_RUNNER.first(Runner, runner_id=some_id)

The parameters come out of the query itself, with the column's own conversion (a
UUID column's, say), so they cannot drift from it; a value missing or unknown is a
TypeError naming the statement. Backend clauses (FOR UPDATE) go inside the query
through `database.lock_rows`, so each backend compiles its own SQL.

A column's *default* is not a parameter: an INSERT names every column it writes.
"""
import peewee as pw

from .models import database


class _Slot:
    """Where a named parameter goes in the compiled SQL, and how its value is converted."""

    __slots__ = ("name", "convert")

    def __init__(self, name, convert):
        self.name, self.convert = name, convert


class Param(pw.Node):
    """A named parameter inside a query. In a comparison (`Job.id == p.job_id`) it takes
    the column's conversion; elsewhere (an UPDATE's SET, an INSERT's VALUES) pass the
    field whose conversion it needs: `Param("status", Job.status)`."""

    def __init__(self, name, field=None):
        super().__init__()
        self.name, self.field = name, field

    def __sql__(self, ctx):
        convert = self.field.db_value if self.field is not None else ctx.state.converter
        return ctx.value(_Slot(self.name, convert), converter=False)


class _Params:
    """`p.name` is Param("name")."""

    def __getattr__(self, name):
        return Param(name)


def columns(model, *fields):
    """{field: Param(field's name, field)} for an INSERT's or UPDATE's values."""
    return {field: Param(field.name, field) for field in (fields or model._meta.sorted_fields)}


class Statement:
    every = []  # each statement made, for the tests that read their query plans

    def __init__(self, name, build):
        self.name = name
        self.build = build  # build(p) -> the peewee query
        self._compiled = {}  # backend class -> [sql, binders, names, row readers]
        Statement.every.append(self)

    def __repr__(self):
        return f"<Statement {self.name!r}>"

    @property
    def names(self):
        """The names of its parameters."""
        return self._compile()[2]

    def _compile(self):
        backend = type(database.obj)
        compiled = self._compiled.get(backend)
        if compiled is None:
            sql, values = self.build(_Params()).sql()
            binders = [(value.name, value.convert) if isinstance(value, _Slot) else (None, value) for value in values]
            names = frozenset(name for name, _ in binders if name is not None)
            order = tuple(name for name, _ in binders)
            compiled = self._compiled[backend] = [sql, binders, names, None, order]
        return compiled

    def bind(self, values):
        """The SQL and its parameters for `values` (keyword arguments by name)."""
        compiled = self._compile()
        sql, binders, names = compiled[0], compiled[1], compiled[2]
        if values.keys() != names:
            missing, unknown = sorted(names - values.keys()), sorted(values.keys() - names)
            raise TypeError(f"statement {self.name!r}: missing {missing}, unknown {unknown}")
        params = []
        for name, convert_or_constant in binders:
            if name is None:  # a constant of the query, converted when it was compiled
                params.append(convert_or_constant)
            else:
                value = values[name]
                params.append(value if convert_or_constant is None or value is None else convert_or_constant(value))
        return sql, params

    def execute(self, **values):
        """Run the statement; returns the cursor."""
        return database.execute_sql(*self.bind(values))

    @property
    def order(self):
        """Its parameters' names in the order the SQL takes them (for execute_rows)."""
        return self._compile()[4]

    def execute_rows(self, rows):
        """The bulk path: `rows` are tuples of values already in the store's form, in `order`
        (no per-value conversion: ~10 us a row less than execute_many, for the journal). Like
        execute_many it uses the cursor directly, without the busy retry: inside a transaction."""
        return database.execute_rows(self._compile()[0], rows)

    def execute_many(self, rows):
        """Run the statement once for each dict of values in `rows`, as one executemany."""
        bound = [self.bind(values) for values in rows]
        return database.execute_rows(bound[0][0], [params for _, params in bound])

    def one(self, **values):
        """The first row as a tuple, or None."""
        return self.execute(**values).fetchone()

    def first(self, model, **values):
        """The first row as a `model` instance, or None."""
        cursor = self.execute(**values)
        row = cursor.fetchone()
        return None if row is None else self._reader(model, cursor)(row)

    def all(self, model, **values):
        """Every row, as `model` instances."""
        cursor = self.execute(**values)
        rows = cursor.fetchall()
        return [self._reader(model, cursor)(row) for row in rows] if rows else []

    def _reader(self, model, cursor):
        """Row -> `model` instance, built here rather than through `Model.raw`, whose
        per-query setup costs ~80 us against ~30 us for all of this (measured on a job row)."""
        compiled = self._compiled[type(database.obj)]
        readers = compiled[3]
        if readers is None:
            fields = [model._meta.columns[column[0]] for column in cursor.description]
            readers = compiled[3] = [(field.name, field.python_value) for field in fields]

        def read(row):
            return model(__no_default__=True, **{
                name: value if value is None else convert(value) for (name, convert), value in zip(readers, row)
            })

        return read
