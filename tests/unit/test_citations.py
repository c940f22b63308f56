"""The reference the code cites lives in the repository: a comment or document that cites a
rule of Opik's behaviour names docs/opik-behaviour.md and one of the anchors its headings define,
and no citation is left of the notes that lived outside the repository."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "opik-behaviour.md"

# Where citations may appear: the package (its pages and scripts too), the tests, the benchmarks
# and the documents.
SCANNED = [
    ("opik_runners", ("*.py", "*.js", "*.html", "*.css", "*.yaml", "*.yml")),
    ("tests", ("*.py", "*.js", "*.html", "*.json", "*.yaml", "*.yml", "*.md")),
    ("bench", ("*.py", "*.lua", "*.md")),
    ("docs", ("*.md",)),
]
TOP_LEVEL = ["README.md", "BENCHMARKS.md", "app.py", "gunicorn.conf.py"]

# A heading's anchor in attr_list syntax: `### Job states {#job-states}`.
ANCHOR_DEFINED = re.compile(r"^#{1,6} .*\{#([^}\s]+)\}\s*$", re.M)
ANCHOR_FORM = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
CITATION = re.compile(r"opik-behaviour\.md#([A-Za-z0-9_-]*)")
# Within the reference, a link to one of its own headings: `[job states](#job-states)`.
INTERNAL_LINK = re.compile(r"\]\(#([^)\s]*)\)")
# The old citations ("... notes" or "client protocol", then a section sign and a number), and a
# bare section sign and number left over from one; a section of a numbered standard
# ("RFC 9110 §15.5.6") is not one.
OLD_CITATIONS = [
    re.compile(r"behaviou?r\s+notes\s*§", re.I),
    re.compile(r"client[\s-]+protocol\s*§", re.I),
    re.compile(r"(?<![0-9] )§\s*\d"),
]
# Built in two parts, so that this file does not cite anything itself.
CITE = "docs/opik-behaviour" + ".md#"


def scanned_files(root=ROOT):
    found = [root / name for name in TOP_LEVEL if (root / name).exists()]
    for folder, patterns in SCANNED:
        for pattern in patterns:
            found.extend(path for path in (root / folder).rglob(pattern) if ".venv" not in path.parts)
    return sorted(set(found))


def numbered_lines(path):
    return enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)


def defined_anchors(text):
    return ANCHOR_DEFINED.findall(text)


def unknown_citations(files, anchors, root=ROOT):
    """(file:line, anchor) of each citation whose anchor is not in `anchors`."""
    known = set(anchors)
    return [
        (f"{path.relative_to(root)}:{number}", anchor)
        for path in files
        for number, line in numbered_lines(path)
        for anchor in CITATION.findall(line)
        if anchor not in known
    ]


def old_citations(files, root=ROOT):
    """`file:line: text` of each line that cites the notes that lived outside the repository."""
    return [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in files
        for number, line in numbered_lines(path)
        if any(pattern.search(line) for pattern in OLD_CITATIONS)
    ]


@pytest.fixture(scope="module")
def anchors():
    return defined_anchors(REFERENCE.read_text(encoding="utf-8"))


def test_the_reference_is_in_the_repository_and_defines_anchors(anchors):
    assert len(anchors) > 50


def test_every_anchor_of_the_reference_is_short_lowercase_and_hyphenated(anchors):
    bad = [anchor for anchor in anchors if not ANCHOR_FORM.fullmatch(anchor) or len(anchor) > 40]
    assert not bad, f"anchors not made of short lower-case words and hyphens: {bad}"


def test_no_anchor_of_the_reference_is_defined_twice(anchors):
    twice = sorted({anchor for anchor in anchors if anchors.count(anchor) > 1})
    assert not twice, f"anchors defined more than once: {twice}"


def test_every_citation_in_the_code_names_an_anchor_of_the_reference(anchors):
    files = scanned_files()
    assert REFERENCE in files and ROOT / "opik_runners" / "static" / "pair.html" in files
    unknown = unknown_citations(files, anchors)
    assert not unknown, "citations of anchors docs/opik-behaviour.md does not define:\n" + "\n".join(
        f"  {place}: #{anchor}" for place, anchor in unknown
    )


def test_every_link_inside_the_reference_names_one_of_its_anchors(anchors):
    broken = [
        (f"{REFERENCE.relative_to(ROOT)}:{number}", anchor)
        for number, line in numbered_lines(REFERENCE)
        for anchor in INTERNAL_LINK.findall(line)
        if anchor not in set(anchors)
    ]
    assert not broken, "links to anchors the reference does not define:\n" + "\n".join(
        f"  {place}: #{anchor}" for place, anchor in broken
    )


def test_no_citation_of_the_notes_outside_the_repository_is_left():
    left = old_citations(scanned_files())
    assert not left, (
        "citations of notes that are not in the repository (cite a heading of docs/opik-behaviour.md):\n"
        + "\n".join(f"  {place}" for place in left)
    )


# -- the checks can fail


@pytest.mark.parametrize("line, anchor", [
    (f"# the claim ({CITE}no-such-rule)", "no-such-rule"),
    (f"// signed ({CITE}bridge-signatures, {CITE}bridge-sigs)", "bridge-sigs"),
    (f"see {CITE}", ""),
])
def test_a_citation_of_an_undefined_anchor_is_reported_with_its_file_and_line(tmp_path, line, anchor):
    (tmp_path / "cites.js").write_text(f"const x = 1;\n{line}\n")
    found = unknown_citations([tmp_path / "cites.js"], ["bridge-signatures"], root=tmp_path)
    assert found == [("cites.js:2", anchor)]


@pytest.mark.parametrize("line", [
    '"""The claims (behaviour notes \u00a72.2)."""',
    "# (Behavior notes \u00a73.0)",
    "// HKDF bridge key, client-protocol \u00a73.7",
    "# retrieve, create (client protocol \u00a73.2)",
    "# order of checks, \u00a73.2",
])
def test_an_old_style_citation_is_reported_with_its_file_and_line(tmp_path, line):
    (tmp_path / "old.py").write_text(f"{line}\n")
    assert old_citations([tmp_path / "old.py"], root=tmp_path) == [f"old.py:1: {line}"]


def test_a_section_of_a_numbered_standard_is_not_an_old_citation(tmp_path):
    (tmp_path / "rfc.py").write_text("# RFC 9110 §15.5.6: a 405 response MUST carry Allow\n")
    assert old_citations([tmp_path / "rfc.py"], root=tmp_path) == []


def test_a_heading_defines_its_anchor_and_prose_does_not():
    text = "## Job states {#job-states}\n\nA {#not-an-anchor} in prose.\n### Claim {#job-claim}\n"
    assert defined_anchors(text) == ["job-states", "job-claim"]
