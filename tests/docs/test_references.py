"""The references say what the code does: the generated ones are generated from it (a setting
without a meaning, or left out, fails here), and the hand-written ones that mirror it (the
endpoints and their operations, the metrics and their labels, the state document's fields, the
provider states, the commands) are read against it."""
import importlib.util
import pathlib
import re

import click
import pytest
from mkdocs_click._docs import make_command_docs

from opik_runners.cli import main
from opik_runners.settings import SETTINGS

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks_reference", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = load_hooks()


def page(name):
    return (DOCS / name).read_text(encoding="utf-8")


def built(name):
    """A page's Markdown as the site builds it (the generated parts filled in)."""
    return hooks.generate(page(name))


def table_rows(text, first_column=r"`([^`]+)`"):
    return re.findall(rf"^\| {first_column} \|", text, re.M)


# -- configuration (generated from settings.py)


def settings_without_meaning(settings):
    return [setting.env for setting in settings if not setting.meaning.strip()]


def settings_missing_from(text, settings):
    """The settings whose row (variable, default, meaning) the page lacks."""
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \{#[a-z-]+\} \| (.+)$", text, re.M))
    return [setting.env for setting in settings
            if setting.env not in rows
            or (setting.shown or setting.default) not in rows[setting.env]
            or setting.meaning.split("(see")[0].strip()[:40].replace("|", "\\|") not in rows[setting.env]]


def test_every_setting_says_what_it_means():
    assert not settings_without_meaning(SETTINGS)


def test_the_configuration_reference_lists_every_setting_with_its_default_and_meaning():
    text = built("reference/configuration.md")
    assert not settings_missing_from(text, SETTINGS)
    listed = re.findall(r"^\| `([A-Z_]+)` \{#", text, re.M)
    assert listed == [setting.env for setting in SETTINGS]


def test_a_setting_added_without_its_docs_fails_the_checks():
    from opik_runners.settings import Setting

    added = Setting("new_knob", "OPIK_RUNNERS_NEW_KNOB", "1", str, "")
    assert settings_without_meaning([*SETTINGS, added]) == ["OPIK_RUNNERS_NEW_KNOB"]
    # A page that does not generate the table (its marker lost) lacks every setting.
    assert settings_missing_from(page("reference/configuration.md"), SETTINGS) == [s.env for s in SETTINGS]


def test_every_part_of_the_docs_a_meaning_points_at_has_a_place():
    for setting in SETTINGS:
        hooks.linked_meaning(setting.meaning)  # raises for a title SEE does not place


def test_an_unknown_generated_part_fails_the_build():
    with pytest.raises(KeyError, match="no such generated part"):
        hooks.generate("<!-- generated: no-such-table -->\n")


# -- commands (mkdocs-click renders them from the click group)


def test_the_commands_reference_renders_every_command_from_the_click_group():
    text = page("reference/commands.md")
    assert ":module: opik_runners.cli" in text and ":command: main" in text
    rendered = "\n".join(make_command_docs(prog_name="opik-runners", command=main, depth=1, style="plain",
                                           list_subcommands=True))

    def names(group, prefix):
        for name, command in group.commands.items():
            yield f"{prefix} {name}"
            if isinstance(command, click.Group):
                yield from names(command, f"{prefix} {name}")

    for name in names(main, "opik-runners"):
        assert re.search(rf"^{re.escape(name)} \[OPTIONS\]", rendered, re.M), f"no usage of {name}"


# -- the control plane's OpenAPI document (generated)


def test_the_admin_reference_has_every_operation_and_schema():
    document = hooks.load_openapi()
    text = built("reference/admin-api.md")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert f"### `{method.upper()} {path}` {{#{operation['operationId'].lower()}}}" in text
    for name in document["components"]["schemas"]:
        assert f"### {name} {{#{hooks.schema_anchor(name)}}}" in text


# -- the endpoints, against the app's routes


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from opik_runners.app import create_app

    database = tmp_path_factory.mktemp("reference") / "reference.db"
    return create_app(DATABASE_URL=f"sqlite:///{database}", OPIK_RUNNER_REAPER_INTERVAL="0")


def documented_path(rule):
    """/v1/private/local-runners/<uuid:runner_id>/jobs -> /v1/private/local-runners/{runnerId}/jobs"""
    def name(found):
        first, *rest = found[1].split("_")
        return "{" + first + "".join(part.title() for part in rest) + "}"

    return re.sub(r"<(?:\w+:)?(\w+)>", name, rule)


def test_the_api_reference_lists_every_endpoint_with_its_operation(app):
    served = set()
    for rule in app.url_map.iter_rules():
        blueprint, _, operation = rule.endpoint.partition(".")
        if blueprint == "api":
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                served.add((method, documented_path(rule.rule), operation))
    documented = set(re.findall(r"^\| `([A-Z]+)` \| `([^`]+)` \| `([a-z_]+)` \|", page("reference/api.md"), re.M))
    assert served, "no routes read"
    assert documented == served


# -- metrics


def test_the_metrics_reference_names_every_metric_with_its_labels(app):
    from prometheus_client.metrics import MetricWrapperBase
    from prometheus_client.parser import text_string_to_metric_families

    from opik_runners import metrics

    def full_name(name, kind):
        return f"{name}_total" if kind == "counter" and not name.endswith("_total") else name

    exposed = {}
    # The process's metrics, with their labels (a labelled one shows no sample until it is used)...
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            exposed[full_name(value._name, value._type)] = set(value._labelnames)
    # ...and what a scrape answers, the database's figures included.
    scrape = app.test_client().get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(scrape):
        if family.name.startswith("opik_runners_") and not family.name.endswith("_created"):
            labels = exposed.setdefault(full_name(family.name, family.type), set())
            labels.update(key for sample in family.samples for key in sample.labels if key != "le")
    assert "opik_runners_runners" in exposed and "opik_runners_reaped_total" in exposed
    documented = {name: set(re.findall(r"`(\w+)`", labels)) for name, labels in
                  re.findall(r"^\| `(opik_runners_\w+)` \|([^|]*)\|", page("reference/metrics.md"), re.M)}
    assert documented == exposed


# -- state documents and provider states


def test_the_state_document_reference_names_every_field_the_loader_takes():
    from marshmallow import fields

    from opik_runners.control.state.document import Document

    text = page("reference/state-documents.md")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.+?) \| [^|]+ \|$", text, re.M))
    for kind, field in Document().fields.items():
        if not isinstance(field, fields.List):
            continue  # version, workspace
        taken = set(field.inner.nested().fields)
        named = set(re.findall(r"`([a-z_]+)`", rows[kind])) & (taken | {"endpoint", "connect"})
        assert named - {"endpoint", "connect"} == taken, kind


def test_the_provider_states_reference_names_every_state():
    from opik_runners.control.provider_states import KNOWN

    assert set(table_rows(page("reference/provider-states.md"))) == set(KNOWN)


# -- what moved from the README


def test_the_contract_tests_page_shows_the_plugin_example_the_suite_runs():
    """The complete pytest example is the very file tests/acceptance/test_pytest_plugin.py runs in
    a new project (the examples' test checks the same, marked same-as)."""
    example = (ROOT / "tests" / "acceptance" / "example_test_opik_endpoint.py").read_text()
    assert f"```python\n{example}```" in page("getting-started/contract-tests.md")


def test_the_benchmarks_page_shows_the_latest_figures():
    def figures(text):
        return re.search(r"^\| figure \| measured.*?(?=\n\n|\Z)", text, re.M | re.S).group(0).strip()

    assert figures(built("explanation/benchmarks.md")) == figures((ROOT / "BENCHMARKS.md").read_text())


def test_the_conformance_reference_lists_every_scenario_and_check():
    from opik_runners.conformance import scenarios  # noqa: F401 - registers them
    from opik_runners.conformance.checks import CHECKS
    from opik_runners.conformance.scenario import SCENARIOS

    text = built("conformance/reference.md")
    for scenario in SCENARIOS:
        assert f"| {scenario.area} | `{scenario.name}` |" in text
    for check in CHECKS:
        assert f"| {check.group} | `{check.__name__}` |" in text
