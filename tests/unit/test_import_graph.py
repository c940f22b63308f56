"""The package's structure: its folders are its layers, each imports only the layers below it
(each folder's __init__.py states its rule), imports go one way (no circles), and only the web
layer knows Flask.

Read from the source with `ast`, imports inside functions included: a lazy import is still a
dependency. A planted violation (a copy of the package with one bad import added) shows that
each rule can fail."""
import ast
import pathlib
import shutil

import pytest

import opik_runners

PACKAGE = pathlib.Path(opik_runners.__file__).parent

# The modules at the top that every layer stands on: they import no folder of the package.
FOUNDATION = {"opik_runners", "opik_runners.settings", "opik_runners.errors", "opik_runners.clock",
              "opik_runners.metrics", "opik_runners.protocol"}
# What each folder may import besides itself and the foundation, lowest first.
LAYERS = {
    "store": set(),
    "schemas": set(),
    "domain": {"store", "schemas"},
    "control": {"store", "schemas", "domain"},
    "web": {"store", "schemas", "domain", "control"},
}
# The clients (and the conformance kit, which may also use them) speak HTTP: the wire protocol and
# the package's version are all they may import of the rest.
CLIENTS = {"client": {"client"}, "conformance": {"client", "conformance"}}
CLIENT_MAY_IMPORT = {"opik_runners", "opik_runners.protocol"}
# Who may import Flask or werkzeug: the web layer, the app factory, and serving (which unwraps
# the Flask app for gunicorn).
FLASK = {"flask", "werkzeug"}
FLASK_ALLOWED = {"opik_runners.app", "opik_runners.serving"}


def module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_package(root):
    """{module: (package modules it imports, top-level names of everything it imports)}."""
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found, external = set(), set()
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
        external = {module.split(".")[0] for module in found}
        graph[name] = ({module for module in found if module in modules and module != name}, external)
    return graph


def layer_of(module):
    """The folder a module is in ("store", "web", ...), "client", "foundation", or "top" for the
    app factory, the command and serving, which may use everything."""
    parts = module.split(".")
    if len(parts) >= 2 and (parts[1] in LAYERS or parts[1] in CLIENTS):
        return parts[1]  # a module of the folder, or its __init__.py
    if module in FOUNDATION:
        return "foundation"
    return "top"


def violations(graph):
    """Every import that breaks a folder's rule, as "importer -> imported (why)"."""
    found = []
    for name, (imports, external) in sorted(graph.items()):
        layer = layer_of(name)
        for imported in sorted(imports):
            other = layer_of(imported)
            if layer == "foundation" and other != "foundation":
                found.append(f"{name} -> {imported} (the foundation imports no folder)")
            elif layer in CLIENTS and other not in CLIENTS[layer] and imported not in CLIENT_MAY_IMPORT:
                found.append(f"{name} -> {imported} ({layer} imports nothing of the server)")
            elif layer in LAYERS and other not in {layer, "foundation"} | LAYERS[layer]:
                found.append(f"{name} -> {imported} ({layer} may import {sorted(LAYERS[layer]) or 'no other folder'})")
        if external & FLASK and layer != "web" and name not in FLASK_ALLOWED:
            found.append(f"{name} -> {sorted(external & FLASK)} (only the web layer knows Flask)")
    return found


GRAPH = read_package(PACKAGE)


def test_the_graph_was_read():
    imports = GRAPH["opik_runners.domain.jobs"][0]
    assert {"opik_runners.domain.ownership", "opik_runners.store.statements", "opik_runners.store.models"} <= imports
    assert "opik_runners.store.db" in GRAPH["opik_runners.app"][0]
    assert {layer_of(name) for name in GRAPH} == {"foundation", "top", *CLIENTS, *LAYERS}


def test_every_folder_keeps_the_rule_its_init_states():
    assert violations(GRAPH) == []


def test_every_folder_states_its_rule():
    for folder in [*LAYERS, *CLIENTS]:
        docstring = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
        assert "Rule:" in docstring, f"{folder}/__init__.py states no rule"


def test_no_import_circles():
    circles = []

    def visit(name, path):
        for imported in sorted(GRAPH[name][0]):
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


def test_the_wakeups_import_nothing_of_the_package():
    assert GRAPH["opik_runners.store.wakeups"][0] == set()


PLANTS = {
    "store/planted.py": ("from ..domain import jobs\n", "opik_runners.store.planted -> opik_runners.domain"),
    "schemas/planted.py": ("from ..store.models import Job\n", "opik_runners.schemas.planted -> opik_runners.store"),
    "domain/planted.py": ("from ..control import journal\n", "opik_runners.domain.planted -> opik_runners.control"),
    "domain/flask_planted.py": ("import flask\n", "opik_runners.domain.flask_planted -> ['flask']"),
    "control/planted.py": ("from ..web import api\n", "opik_runners.control.planted -> opik_runners.web"),
    "client/planted.py": ("from ..domain.limits import MAX_AGENTS_PER_RUNNER\n", "opik_runners.client.planted -> "),
    "conformance/planted.py": ("from ..store.models import Job\n", "opik_runners.conformance.planted -> "),
    "settings_planted.py": ("from .store import db\n", "opik_runners.settings_planted -> opik_runners.store"),
}


@pytest.mark.parametrize("where", sorted(PLANTS))
def test_a_planted_violation_is_found(tmp_path, where):
    copy = tmp_path / "opik_runners"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("static", "__pycache__"))
    source, expected = PLANTS[where]
    (copy / where).write_text(source)
    graph = read_package(copy)
    if where == "settings_planted.py":  # a new module at the top is the foundation only if listed
        FOUNDATION.add("opik_runners.settings_planted")
        try:
            found = violations(graph)
        finally:
            FOUNDATION.discard("opik_runners.settings_planted")
    else:
        found = violations(graph)
    assert [line for line in found if line.startswith(expected)], found
    assert violations(read_package(PACKAGE)) == []  # the real package is untouched
