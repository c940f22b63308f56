"""No module of the package one must scroll through for minutes: each stays within about 400
lines, and one that does not says why in its docstring ("over 400 lines, on purpose: ...")."""
import ast
import pathlib

import opik_runners

PACKAGE = pathlib.Path(opik_runners.__file__).parent
LIMIT = 400


def oversized_without_a_reason(package):
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") <= LIMIT:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if f"over {LIMIT} lines, on purpose" not in docstring:
            yield str(path.relative_to(package.parent))


def test_every_module_over_400_lines_says_why_in_its_docstring():
    assert list(oversized_without_a_reason(PACKAGE)) == []


def test_a_long_module_without_a_reason_is_found(tmp_path):
    (tmp_path / "short.py").write_text('"""Short."""\n')
    (tmp_path / "long.py").write_text('"""Long, for no reason."""\n' + "x = 1\n" * LIMIT)
    (tmp_path / "reasoned.py").write_text('"""One module over 400 lines, on purpose: a reason."""\n' + "x = 1\n" * LIMIT)
    assert list(oversized_without_a_reason(tmp_path)) == [f"{tmp_path.name}/long.py"]
