"""The repository's own promises: the contract copy stays true, and CI runs the README's test
command. The checks of what the README used to hold (the settings, the benchmark figures, the pytest
example) moved with that content to the documentation: tests/docs/test_references.py."""
import pathlib
import re

import pytest
import yaml

from tests.support import contract

ROOT = pathlib.Path(__file__).resolve().parents[2]


def without_our_additions(document):
    """The contract as Opik publishes it: without the 415s this repository adds (its description
    says so), and without the sentence that says it."""
    document["info"]["description"] = document["info"]["description"].split(" Added by opik-runners:")[0]
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop("415", None)
    return document


@pytest.mark.skipif(not contract.SHARED.exists(), reason="no ../shared beside this checkout")
def test_the_contract_is_the_shared_one_with_only_the_documented_additions():
    ours = yaml.safe_load(contract.CONTRACT.read_text())
    assert "Added by opik-runners: a 415" in ours["info"]["description"]
    assert without_our_additions(ours) == yaml.safe_load(contract.SHARED.read_text())


def test_the_contract_documents_a_415_wherever_a_body_is_taken():
    document = yaml.safe_load(contract.CONTRACT.read_text())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert ("415" in operation["responses"]) == ("requestBody" in operation), (method, path)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    test_command = re.findall(r"```sh\n(.*?)\n```", readme, re.S)[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
