"""The package's structure: imports go one way (no module imports one that imports it back,
directly or around a circle), and the domain knows nothing of Flask.

Read from the source with `ast`, imports inside functions included: a lazy import is
still a dependency."""
import ast
import pathlib

import pytest

import opik_runners

PACKAGE = pathlib.Path(opik_runners.__file__).parent
# The rules of the service: they run with a database and a settings object, no app.
DOMAIN = ["ownership", "polls", "jobs", "runners", "bridge", "pairing", "projects", "traces", "maintenance",
          "state", "provider_states", "faults", "reset", "stats"]
# What the domain stands on (the control plane's shared state and journal included).
STORE = ["models", "statements", "backends", "wakeups", "db", "migrations", "settings", "limits", "errors",
         "clock", "control", "journal", "notes", "metrics"]
# The package's clients of the API: they speak HTTP, and import nothing of the server.
CLIENTS = ["simulate", "testing", "pytest_plugin"]


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path):
    """The package's modules that `path` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)  # `from . import jobs`
    return {module for module in found if module in MODULES and module != name}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_the_graph_was_read():
    assert GRAPH["opik_runners.jobs"] >= {"opik_runners.ownership", "opik_runners.statements", "opik_runners.models"}
    assert "opik_runners.db" in GRAPH["opik_runners.app"]


def test_no_import_circles():
    circles = []

    def visit(name, path):
        for imported in sorted(GRAPH[name]):
            if imported in path:
                circles.append(path[path.index(imported):] + [imported])
            elif imported not in done:
                visit(imported, path + [imported])
        done.add(name)

    done = set()
    for name in sorted(GRAPH):
        if name not in done:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)


@pytest.mark.parametrize("name", DOMAIN + STORE + CLIENTS)
def test_the_domain_and_the_store_do_not_import_flask(name):
    path = MODULES[f"opik_runners.{name}"]
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules.add(node.module.split(".")[0])
    assert not modules & {"flask", "werkzeug"}, f"{name} imports {modules & {'flask', 'werkzeug'}}"


@pytest.mark.parametrize("name", STORE)
def test_the_store_does_not_import_the_domain(name):
    domain = {f"opik_runners.{module}" for module in DOMAIN}
    assert not GRAPH[f"opik_runners.{name}"] & domain


@pytest.mark.parametrize("name", CLIENTS)
def test_the_clients_import_nothing_of_the_server(name):
    assert GRAPH[f"opik_runners.{name}"] <= {f"opik_runners.{module}" for module in CLIENTS + ["__init__"]} | {
        "opik_runners"}


def test_the_wakeups_import_nothing_of_the_package():
    assert GRAPH["opik_runners.wakeups"] == set()
