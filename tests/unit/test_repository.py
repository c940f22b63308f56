"""The repository's own promises: the contract copy and the README stay true."""
import pathlib
import re

import pytest

import contract
from opik_runners.settings import SETTINGS

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not contract.SHARED.exists(), reason="no ../shared beside this checkout")
def test_contract_copy_matches_shared():
    assert contract.CONTRACT.read_bytes() == contract.SHARED.read_bytes()


def test_readme_config_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M))
    assert {setting.env for setting in SETTINGS} <= documented


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    test_command = re.findall(r"```sh\n(.*?)\n```", readme, re.S)[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_shows_the_latest_benchmark_figures():
    def figures(name):
        text = (ROOT / name).read_text()
        return re.search(r"^\| figure \| measured.*?(?=\n\n)", text, re.M | re.S).group(0)

    assert figures("README.md") == figures("BENCHMARKS.md")


def test_the_readme_shows_the_plugin_example_the_suite_runs():
    """The README's complete pytest example is the very file tests/acceptance/test_pytest_plugin.py
    runs in a new project."""
    example = (ROOT / "tests" / "acceptance" / "example_test_opik_endpoint.py").read_text()
    assert f"```python\n{example}```" in (ROOT / "README.md").read_text()
