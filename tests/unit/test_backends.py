"""The store's interface is code: Backend declares every method (store/backend.py), each
backend implements all of them, and nothing outside the store asks which backend it has."""
import ast
import inspect
import pathlib
import re

import pytest

import opik_runners
from opik_runners.store.backend import Backend
from opik_runners.store.postgres import PostgresBackend
from opik_runners.store.sqlite import SqliteBackend

PACKAGE = pathlib.Path(opik_runners.__file__).parent


def declared_only():
    """The methods Backend declares and leaves to each backend (they raise NotImplementedError)."""
    return sorted(name for name, value in vars(Backend).items()
                  if inspect.isfunction(value) and "NotImplementedError" in value.__code__.co_names)


def test_backend_declares_the_whole_interface_with_a_docstring_each():
    methods = [name for name, value in vars(Backend).items() if inspect.isfunction(value)]
    assert {"lock_rows", "claim_rows", "hold_rows", "retrying_deadlocks", "notify", "prune_wakeups",
            "start_watcher", "execute_rows", "data_version", "disk_full", "serialize_schema_changes", "exclusive",
            "backup", "hand_back_connection", "shut"} <= set(methods)
    assert [name for name in methods if not vars(Backend)[name].__doc__] == []


@pytest.mark.parametrize("backend", [SqliteBackend, PostgresBackend], ids=["sqlite", "postgresql"])
def test_each_backend_implements_every_method_backend_leaves_to_it(backend):
    assert [name for name in declared_only() if getattr(backend, name) is vars(Backend)[name]] == []


# Ways a module could ask which backend it has.
ASKING = re.compile(r"startswith\(\"postgres|startswith\(\"sqlite|\.kind\s*[=!]=|isinstance\([^)]*(Sqlite|Postgres)"
                    r"|SqliteBackend|PostgresBackend")


def test_nothing_outside_the_store_asks_which_backend_it_has():
    asking = []
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "store" in path.parents:
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        if imported & {"sqlite3", "psycopg2", "psycogreen"}:
            asking.append(f"{path.relative_to(PACKAGE)} imports {sorted(imported & {'sqlite3', 'psycopg2', 'psycogreen'})}")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ASKING.search(line.split("#")[0]):
                asking.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert asking == []
