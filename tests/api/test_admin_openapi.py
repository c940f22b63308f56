"""The control plane's own OpenAPI document (opik_runners/admin-openapi.yaml, package data): valid,
served as shipped, and describing exactly the routes the admin blueprint serves. (Every admin
response a test produces is validated against it: contract.validate.)"""
import importlib.resources
import re

import yaml
from openapi_spec_validator import validate

DOCUMENT = importlib.resources.files("opik_runners").joinpath("admin-openapi.yaml")
ACCESS = {"401", "403", "404"}  # the access rows: keys without an admin user, a non-admin, the plane off


def operations():
    spec = yaml.safe_load(DOCUMENT.read_text())

    def resolved(parameter):  # {"$ref": "#/components/parameters/Workspace"} -> that parameter
        if "$ref" in parameter:
            return spec["components"]["parameters"][parameter["$ref"].rpartition("/")[2]]
        return parameter

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            operation["parameters"] = [resolved(parameter) for parameter in operation.get("parameters", [])]
            yield path, method, operation


def test_the_document_is_valid_openapi():
    validate(yaml.safe_load(DOCUMENT.read_text()))


def test_it_is_served_as_shipped(client):
    served = client.get("/_admin/openapi.yaml")
    assert (served.status_code, served.mimetype) == (200, "application/yaml")
    assert served.data == DOCUMENT.read_bytes()


def test_it_documents_every_admin_route_and_no_other(app):
    def shape(path):  # /_admin/faults/<int:rule_id> and /_admin/faults/{id} alike
        return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)

    served = {
        (shape(rule.rule), method.lower())
        for rule in app.url_map.iter_rules() if rule.rule.startswith("/_admin/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(shape(path), method) for path, method, _ in operations()}
    assert served == documented


def test_every_operation_documents_its_access_and_input_errors():
    for path, method, operation in operations():
        statuses = set(operation["responses"])
        assert ACCESS <= statuses, f"{method} {path}: {sorted(statuses)}"
        takes_input = "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", []))
        assert ("400" in statuses) == takes_input, f"{method} {path}: {sorted(statuses)}"
