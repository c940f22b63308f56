"""MkDocs hook: the references that come from the code, generated at every build so that they
cannot drift from it.

A page asks for one with an HTML comment on a line of its own, `<!-- generated: NAME -->`:

- `configuration`: the settings table, from `opik_runners.settings.SETTINGS` (each setting's
  variable, default and meaning);
- `admin-api`: the control plane's endpoints and schemas, from `opik_runners/admin-openapi.yaml`
  (the document the server itself answers at GET /_admin/openapi.yaml);
- `benchmark-figures`: the latest figures table of BENCHMARKS.md;
- `conformance-scenarios`, `conformance-checks`: the conformance kit's server scenarios and runner
  checks, from their registries.

An unknown name fails the build. The functions are plain: tests/docs calls them too.
"""
import html
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
GENERATED = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)

# A setting's meaning may point at a part of the documentation by its title, `(see "Serving")`:
# where each title is, from the configuration page (docs/reference/configuration.md).
SEE = {
    "Maintenance": "../explanation/polls-and-claims.md#the-reaper",
    "Security of a local server": "../explanation/security.md",
    "Serving": "../explanation/architecture.md#serving",
}
SEE_TITLE = re.compile(r'\(see "([^"]+)"')


def cell(text):
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


# -- configuration


def linked_meaning(meaning):
    def link(found):
        title = found[1]
        if title not in SEE:
            raise KeyError(f"a setting's meaning points at {title!r}, which docs/hooks/reference.py's SEE "
                           f"does not place")
        return f"(see [{title}]({SEE[title]})"

    return SEE_TITLE.sub(link, meaning)


def configuration_table():
    from opik_runners.settings import SETTINGS

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = setting.shown or f"`{setting.default}`"
        rows.append(f"| `{setting.env}` {{#{setting.env.lower().replace('_', '-')}}} | {cell(default)} | "
                    f"{cell(linked_meaning(setting.meaning))} |")
    return "\n".join(rows)


# -- the control plane's OpenAPI document


def load_openapi(path=ROOT / "opik_runners" / "admin-openapi.yaml"):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def resolve(document, node):
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_anchor(name):
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def type_of(document, schema):
    """A schema's type in a few words, linking to a named schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{schema_anchor(name)})"
    if "oneOf" in schema:
        return " or ".join(type_of(document, option) for option in schema["oneOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        kind = f"array of {type_of(document, schema.get('items', {}))}"
    elif schema.get("format"):
        kind = f"{kind} ({schema['format']})"
    if schema.get("enum"):
        kind += " " + ", ".join(f"`{value}`" for value in schema["enum"])
    if schema.get("nullable"):
        kind += ", or null"
    return kind


def limits(schema):
    said = []
    if "minimum" in schema:
        said.append(f"min {schema['minimum']}")
    if "maximum" in schema:
        said.append(f"max {schema['maximum']}")
    if "default" in schema:
        said.append(f"default `{schema['default']}`")
    return "; ".join(said)


def describe(schema):
    text = " ".join(part for part in (schema.get("description", "").strip(), limits(schema)) if part)
    return cell(text)


def properties_table(document, schema):
    schema = resolve(document, schema)
    properties = schema.get("properties", {})
    if not properties:
        return ""
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        rows.append(f"| `{name}` | {cell(type_of(document, prop))} | {'yes' if name in required else ''} | "
                    f"{describe(prop)} |")
    return "\n".join(rows)


def body_of(document, content):
    """The JSON schema of a request or response body, or None."""
    if not content:
        return None
    for media, value in content.items():
        if "json" in media:
            return value.get("schema")
    return None


def operation_section(document, path, method, operation):
    lines = [f"### `{method.upper()} {path}` {{#{operation['operationId'].lower()}}}", ""]
    lines += [f"**{operation['summary']}.**" if operation.get("summary") else "", ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    parameters = [resolve(document, parameter) for parameter in operation.get("parameters", [])]
    if parameters:
        lines += ["| parameter | in | type | description |", "|---|---|---|---|"]
        for parameter in parameters:
            schema = parameter.get("schema", {})
            text = " ".join(part for part in (parameter.get("description", ""), limits(schema)) if part)
            lines.append(f"| `{parameter['name']}` | {parameter['in']} | {cell(type_of(document, schema))} | "
                         f"{cell(text)} |")
        lines.append("")
    request = resolve(document, operation.get("requestBody", {}))
    schema = body_of(document, request.get("content"))
    if schema is not None:
        lines += [f"Body (JSON): {type_of(document, schema)}.", ""]
    lines += ["| status | means | body |", "|---|---|---|"]
    for status, response in operation["responses"].items():
        response = resolve(document, response)
        answer = body_of(document, response.get("content"))
        lines.append(f"| {status} | {cell(response.get('description', ''))} | "
                     f"{cell(type_of(document, answer)) if answer else ''} |")
    return lines + [""]


def admin_api():
    document = load_openapi()
    tags = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    by_tag = {name: [] for name in tags}
    by_tag[None] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or [None])[0]
            by_tag.setdefault(tag, []).append((path, method, operation))
    lines = [document["info"]["description"].strip(), ""]
    for tag, operations in by_tag.items():
        if not operations:
            continue
        title = f"{tag}: {tags[tag]}" if tag else "the document"
        lines += [f"## {html.escape(title[0].upper() + title[1:], quote=False)}", ""]
        for path, method, operation in operations:
            lines += operation_section(document, path, method, operation)
    lines += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += [f"### {name} {{#{schema_anchor(name)}}}", ""]
        if schema.get("description"):
            lines += [schema["description"].strip(), ""]
        table = properties_table(document, schema)
        if table:
            lines += [table, ""]
            for prop_name, prop in schema.get("properties", {}).items():
                if prop.get("type") == "object" and prop.get("properties"):
                    lines += [f"`{prop_name}`:", "", properties_table(document, prop), ""]
        elif schema.get("additionalProperties"):
            lines += ["An object of any fields.", ""]
    return "\n".join(lines)


# -- benchmarks


def benchmark_figures():
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    found = re.search(r"^\| figure \| measured.*?(?=\n\n)", text, re.M | re.S)
    if not found:
        raise ValueError("BENCHMARKS.md has no figures table (| figure | measured | target | met |)")
    return found.group(0)


# -- the conformance kit


def conformance_scenarios():
    """The server scenarios, by area, from the kit's registry (opik_runners/conformance/scenarios/)."""
    from opik_runners.conformance import scenarios  # noqa: F401 - registers them
    from opik_runners.conformance.scenario import AREAS, SCENARIOS

    rows = ["| area | scenario | what it shows | under profile `opik` |", "|---|---|---|---|"]
    for area in AREAS:
        for found in (s for s in SCENARIOS if s.area == area):
            notes = []
            if found.departure:
                notes.append(f"differs: [{found.departure}](../opik-behaviour.md#{found.departure})")
            if found.slow:
                notes.append("`--slow` only")
            rows.append(f"| {area} | `{found.name}` | {cell(found.title)} | {'; '.join(notes)} |")
    return "\n".join(rows)


def conformance_checks():
    """The runner grader's checks, in the order it runs them (opik_runners/conformance/checks.py)."""
    from opik_runners.conformance.checks import CHECKS

    rows = ["| group | check | what it grades |", "|---|---|---|"]
    for check in CHECKS:
        rows.append(f"| {check.group} | `{check.__name__}` | {cell(check.title)} |")
    return "\n".join(rows)


GENERATORS = {
    "configuration": configuration_table,
    "admin-api": admin_api,
    "benchmark-figures": benchmark_figures,
    "conformance-scenarios": conformance_scenarios,
    "conformance-checks": conformance_checks,
}


def generate(markdown):
    def replace(found):
        name = found[1]
        if name not in GENERATORS:
            raise KeyError(f"<!-- generated: {name} -->: no such generated part ({', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return GENERATED.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files, **kwargs):
    return generate(markdown)
