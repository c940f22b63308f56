"""Each module's named statements stand together at its top, each under a comment that says why
it is shaped so (procrastinate's queries.sql is the model: a name and a line of why): a reader
finds a module's SQL in one place, before the functions that run it."""
import ast
import pathlib

import pytest

import opik_runners

PACKAGE = pathlib.Path(opik_runners.__file__).parent


def is_statement(node):
    """A top-level assignment of a Statement, or of a dict of them (one per shape)."""
    if not isinstance(node, ast.Assign):
        return False
    value = node.value
    if isinstance(value, ast.DictComp):
        value = value.value
    return isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Statement"


def statement_modules():
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if any(is_statement(node) for node in ast.parse(path.read_text()).body))


def names_used_in_statements(tree):
    """The functions the statements' builders call: they belong with the statements."""
    used = set()
    for node in tree.body:
        if is_statement(node):
            used |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    grew = True
    while grew:  # what those functions call in turn
        grew = False
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in used:
                more = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - used
                if more & {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}:
                    used |= more
                    grew = True
    return used


@pytest.mark.parametrize("path", statement_modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_modules_statements_stand_together_at_its_top_each_saying_why(path):
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    builders = names_used_in_statements(tree)
    last_statement = max(node.lineno for node in tree.body if is_statement(node))
    before = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
              and node.lineno < last_statement and node.name not in builders]
    assert before == [], f"{path.name}: {before} stand among or before its statements"
    statements = [node for node in tree.body if is_statement(node)]
    ends = {node.end_lineno for node in statements}
    # A comment right above it; or it follows the statement before it with no blank line: a group
    # under one comment (connected and disconnected runners, counted alike).
    silent = [node.targets[0].id for node in statements
              if not lines[node.lineno - 2].lstrip().startswith("#") and node.lineno - 1 not in ends]
    assert silent == [], f"{path.name}: no comment says why {silent} are shaped so"
