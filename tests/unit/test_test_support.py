"""The suite's own rules for what tests share: conftest.py hands out fixtures and is imported by
no one; what tests share besides fixtures is in tests/support, imported by its full name
(`tests.support.<module>`, never by a bare name or a relative import, and never from another test
module); the contract-tests page's example imports nothing of the suite; and the protocol's crypto is
opik_runners.protocol's, with no copy of it under its own names.

Read from the source with `ast`, imports inside functions included. A planted tree shows that each
rule can fail."""
import ast
import inspect
import pathlib
import textwrap

from opik_runners import protocol

TESTS = pathlib.Path(__file__).resolve().parents[1]
# docs/getting-started/contract-tests.md quotes it and test_pytest_plugin.py runs it in a new project: it stands alone.
EXAMPLE = pathlib.Path("acceptance", "example_test_opik_endpoint.py")
# Names the support modules had when tests imported them by bare name.
RETIRED = {"server", "helpers", "opik_cli"}
TEST_FOLDERS = {"unit", "api", "acceptance", "support"}
PROTOCOL_FUNCTIONS = {name for name, value in vars(protocol).items()
                      if inspect.isfunction(value) and value.__module__ == protocol.__name__}


def imported_modules(tree):
    """(line, module name as written, level) of every import, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            yield node.lineno, base, node.level
            if base == "tests" and not node.level:  # `from tests import conftest` names a module
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}", 0


def findings(root):
    """What breaks the rules in the test tree at `root`: "path:line: what" lines."""
    support = {path.stem for path in (root / "support").glob("*.py") if path.stem != "__init__"}
    bare = support | RETIRED | TEST_FOLDERS
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        tree = ast.parse(path.read_text())
        for line, module, level in imported_modules(tree):
            top = module.split(".")[0]
            if level:
                found.append((relative, line, "relative import (import tests.support.… by its full name)"))
            elif top == "conftest" or module.endswith(".conftest"):
                found.append((relative, line, "imports conftest (ask for its fixtures; import helpers from tests.support)"))
            elif top in bare or top.startswith("test_"):
                found.append((relative, line, f"imports {module!r} by a bare name (import tests.support.… instead)"))
            elif top == "tests" and relative == EXAMPLE:
                found.append((relative, line, f"the documented example imports {module!r} (it must stand alone)"))
            elif top == "tests" and module.split(".")[1:2] != ["support"] and module != "tests":
                found.append((relative, line, f"imports the test module {module!r} (shared code goes to tests.support)"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in PROTOCOL_FUNCTIONS:
                found.append((relative, node.lineno, f"defines {node.name}(), a copy of opik_runners.protocol's"))
    return [f"{path}:{line}: {what}" for path, line, what in sorted(found)]


def test_the_suite_keeps_its_rules():
    assert findings(TESTS) == []


def test_the_support_modules_say_what_each_is_for():
    described = (TESTS / "support" / "__init__.py").read_text()
    for path in (TESTS / "support").glob("*.py"):
        if path.stem != "__init__":
            assert f"- {path.stem}: " in described, f"tests/support/__init__.py does not describe {path.name}"


def test_each_rule_can_fail(tmp_path):
    files = {
        "support/__init__.py": "",
        "support/servers.py": "from tests.support.data import AGENT\n",
        "support/data.py": "AGENT = {}\n",
        "support/contract.py": "",
        "conftest.py": "from tests.support.servers import AGENT\n",
        "api/test_clean.py": """
            from tests.support import contract
            from tests.support.servers import AGENT
            import opik_runners.protocol
        """,
        "api/test_planted.py": """
            import contract
            from conftest import API
            from servers import AGENT
            from helpers import AGENT
            from .test_clean import contract
            from tests.api.test_clean import AGENT
            from acceptance.test_cli_endpoint import Api


            def test_lazy():
                from tests.conftest import API


            def activation_hmac(session_id, key, name):
                pass
        """,
        "acceptance/example_test_opik_endpoint.py": "from tests.support.data import AGENT\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))

    assert findings(tmp_path) == [
        "acceptance/example_test_opik_endpoint.py:1: the documented example imports 'tests.support.data' "
        "(it must stand alone)",
        "api/test_planted.py:2: imports 'contract' by a bare name (import tests.support.… instead)",
        "api/test_planted.py:3: imports conftest (ask for its fixtures; import helpers from tests.support)",
        "api/test_planted.py:4: imports 'servers' by a bare name (import tests.support.… instead)",
        "api/test_planted.py:5: imports 'helpers' by a bare name (import tests.support.… instead)",
        "api/test_planted.py:6: relative import (import tests.support.… by its full name)",
        "api/test_planted.py:7: imports the test module 'tests.api.test_clean' (shared code goes to tests.support)",
        "api/test_planted.py:8: imports 'acceptance.test_cli_endpoint' by a bare name (import tests.support.… instead)",
        "api/test_planted.py:12: imports conftest (ask for its fixtures; import helpers from tests.support)",
        "api/test_planted.py:15: defines activation_hmac(), a copy of opik_runners.protocol's",
    ]
