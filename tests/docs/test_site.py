"""The documentation site as a whole: every page is in the navigation, the README is a landing
page whose links lead somewhere, the reference of Opik's behaviour keeps its place, and every
image a page shows is a screenshot the console's tests take. (`mkdocs build --strict`, in
.ci/run, checks the links and anchors between the pages.)"""
import pathlib
import re

from mkdocs.config import load_config

from tests.support import docs_images

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def config():
    return load_config(str(ROOT / "mkdocs.yml"))


def nav_pages(nav):
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                yield from nav_pages(value)
            else:
                yield value


def test_every_page_is_in_the_navigation_once_and_every_entry_is_a_page():
    listed = list(nav_pages(config()["nav"]))
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md") if "hooks" not in path.parts)
    assert sorted(listed) == pages
    assert len(listed) == len(set(listed))


def test_the_reference_the_code_cites_is_an_explanation_with_its_anchors_enabled():
    loaded = config()
    explanation = next(entry["Explanation"] for entry in loaded["nav"] if "Explanation" in entry)
    assert "opik-behaviour.md" in list(nav_pages(explanation))
    assert "attr_list" in loaded["markdown_extensions"]


def test_the_readme_is_a_landing_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    for use in ("docs/getting-started/dev-server.md", "docs/getting-started/contract-tests.md",
                "docs/getting-started/embedded.md"):
        assert f"]({use})" in text
    assert "mkdocs serve" in text


def test_every_relative_link_of_the_readme_leads_to_a_file():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\((?!https?:|#|mailto:)([^)\s#]+)(?:#[^)\s]*)?\)", text)
    assert links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_every_image_shown_is_a_screenshot_the_console_tests_take_or_a_drawing():
    taken = docs_images.screenshots_taken()
    assert "runner-endpoint-desktop.png" in taken  # the console's tests, read
    shown = docs_images.shown_images()
    assert shown
    for image, where in shown.items():
        assert image.parent == DOCS / "images", f"{where}: images live in docs/images/, not {image}"
        assert image.exists(), f"{where}: docs/images/{image.name} is missing (tests/support/docs_images.py copies it)"
        if image.suffix == ".svg":  # a drawing made for the docs (the layers), not a picture of the console
            assert image.read_text().lstrip().startswith("<svg"), image.name
        else:
            assert image.name in taken, f"{where}: {image.name} is no screenshot the console's tests take"


def test_every_committed_image_is_shown():
    shown = {image.name for image in docs_images.shown_images()}
    unused = sorted(path.name for path in (DOCS / "images").glob("*") if path.name not in shown)
    assert not unused, f"docs/images/ holds images no page shows: {unused}"


def test_the_built_site_is_not_committed():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/site/" in ignored
