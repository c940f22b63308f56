"""Copy the console screenshots the documentation shows from screenshots/ (where the console's
tests write them) to docs/images/, after a run of those tests:

    .venv/bin/python -m pytest tests/acceptance/test_console.py tests/acceptance/test_pairing_page.py
    .venv/bin/python tests/support/docs_images.py

Only the screenshots the pages of docs/ and the README show are copied (docs/images/*.svg are
drawings made for the docs). Standard library only; also
imported by tests/docs/test_site.py (as tests.support.docs_images), which checks that each shown image is one the tests take."""
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"
IMAGES = ROOT / "docs" / "images"
# Markdown images of the pages: ![alt](path)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
# The console tests' calls, `screenshot(page, "runner endpoint")`, and the files each writes.
SHOT = re.compile(r"""\bscreenshot\(\s*\w+\s*,\s*["']([^"']+)["']""")
VARIANTS = ("desktop", "phone", "desktop-dark")


def pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shown_images():
    """{image file name: [pages that show it]} of every image the README and docs/ show."""
    shown = {}
    for page in pages():
        for target in IMAGE.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            shown.setdefault(path, []).append(str(page.relative_to(ROOT)))
    return shown


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def screenshots_taken():
    """Every file name the browser tests write to screenshots/, read from their source."""
    names = set()
    for test in (ROOT / "tests").rglob("test_*.py"):
        for name in SHOT.findall(test.read_text(encoding="utf-8")):
            names.update(f"{slug(name)}-{variant}.png" for variant in VARIANTS)
    return names


def main():
    missing = []
    for image in sorted(path for path in shown_images() if path.suffix == ".png"):
        source = SCREENSHOTS / image.name
        if not source.exists():
            missing.append(image.name)
            continue
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, IMAGES / image.name)
        print(f"docs/images/{image.name} <- screenshots/{image.name}")
    if missing:
        print(f"not in screenshots/ (run the console tests first): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
