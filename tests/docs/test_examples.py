"""Every shell and Python example of README.md and docs/ runs against a real server, as a reader
copy-pastes it (tests/support/examples.py says how, and the markers that take a block otherwise); and an
example that no longer works fails its page's test, with the page's line, what ran and what it
printed."""
import os
import textwrap

import pytest

from tests.support import examples

PAGES = examples.pages()
# The pages' examples run on SQLite files of their own: the PostgreSQL pass would repeat them.
own_sqlite = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                                reason="the examples serve their own SQLite databases (the SQLite pass runs them)")


def page_id(page):
    return str(page.relative_to(examples.ROOT))


@pytest.mark.slow
@own_sqlite
@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_examples_of_the_page_work(page, examples_tally):
    examples_tally[page_id(page)] = examples.run_page(page)


# -- the markers and the collection (no server)


def test_every_marker_parses_and_every_skip_says_why():
    for page in PAGES:
        for block in examples.blocks(page):  # raises for a bad marker or a skip without a reason
            if block.marker.kind == "skip":
                assert len(block.marker.argument) > 10, f"{block.where}: say why, and where it runs instead"


def test_the_readme_and_the_getting_started_pages_have_examples_that_run():
    for name in ("README.md", "docs/getting-started/dev-server.md", "docs/getting-started/contract-tests.md",
                 "docs/getting-started/embedded.md"):
        runs = [block for block in examples.blocks(examples.ROOT / name) if block.runs]
        assert len(runs) >= 3, name


def test_the_documented_addresses_become_the_pages_ports_and_back():
    ports = (40001, 40002)
    text = "curl http://127.0.0.1:5173/x localhost:5173 --bind 0.0.0.0:5173 b 127.0.0.1:5174 15173 5173:5173"
    local = examples.localize(text, ports)
    assert local == ("curl http://127.0.0.1:40001/x localhost:40001 --bind 127.0.0.1:40001 b 127.0.0.1:40002 "
                     "15173 5173:5173")
    assert examples.documented(local, ports) == text.replace("0.0.0.0", "127.0.0.1")


def test_expected_output_takes_ellipses():
    assert examples.matches("Backed up ... to backup.db (... bytes, integrity check ok).",
                            "Backed up /x/opik-runners.db to backup.db (4,096 bytes, integrity check ok).\n")
    assert not examples.matches("Loaded 1 projects.", "Loaded 2 projects.")


# -- a broken example fails


def write_page(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text))
    return page


def run_broken(tmp_path, text):
    with pytest.raises(examples.ExampleError) as failed:
        examples.run_page(write_page(tmp_path, text), tmp_path / "run")
    return str(failed.value)


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "run").mkdir()
    return tmp_path


def test_a_command_that_fails_fails_the_page_with_its_line_and_output(run_dir):
    message = run_broken(run_dir, """\
        # A page

        ```sh
        opik-runners --version
        ```

        ```sh
        opik-runners seed no-such-document.json
        ```
    """)
    assert "page.md:7: the sh example failed" in message
    assert "No such file" in message or "does not exist" in message


def test_a_failure_in_the_middle_of_a_block_fails_it(run_dir):
    message = run_broken(run_dir, """\
        ```sh
        false
        echo "went on"
        ```
    """)
    assert "page.md:1: the sh example failed" in message and "went on" not in message.split("--- its output:")[1]


def test_output_that_differs_from_the_page_fails(run_dir):
    message = run_broken(run_dir, """\
        ```console
        $ opik-runners --version
        opik-runners 0.0.1
        ```
    """)
    assert "printed" in message and "opik-runners 0.0.1" in message


def test_a_python_example_that_raises_fails(run_dir):
    message = run_broken(run_dir, """\
        ```python
        from opik_runners.testing import RunnerServer

        RunnerServer().no_such_helper()
        ```
    """)
    assert "AttributeError" in message


@pytest.mark.slow
def test_a_server_that_does_not_serve_fails(run_dir):
    message = run_broken(run_dir, """\
        <!-- example: server timeout=5 -->
        ```sh
        DATABASE_URL=nosuchdb://x opik-runners serve
        ```
    """)
    assert "did not serve /is-alive/ping (it exited)" in message


def test_a_copy_that_drifted_from_its_file_fails(run_dir):
    message = run_broken(run_dir, """\
        <!-- example: same-as tests/acceptance/example_test_opik_endpoint.py -->
        ```python
        def test_nothing():
            pass
        ```
    """)
    assert "no longer tests/acceptance/example_test_opik_endpoint.py" in message


@pytest.mark.parametrize("marker, complaint", [
    ("<!-- example: skip -->", "must say why"),
    ("<!-- example: serve -->", "first word must be one of"),
    ("<!-- example: background wait -->", "does not take"),
])
def test_a_bad_marker_fails(tmp_path, marker, complaint):
    page = write_page(tmp_path, f"{marker}\n```sh\ntrue\n```\n")
    with pytest.raises(examples.ExampleError, match=complaint):
        examples.blocks(page)


def test_a_marker_with_no_block_under_it_fails(tmp_path):
    page = write_page(tmp_path, "<!-- example: skip because -->\n\nSome prose.\n\n```sh\ntrue\n```\n")
    with pytest.raises(examples.ExampleError, match="no block under it"):
        examples.blocks(page)


@pytest.mark.slow
def test_variables_carry_from_one_block_to_the_next_and_a_served_page_answers(run_dir):
    page = write_page(run_dir, """\
        <!-- example: server -->
        ```sh
        opik-runners serve --workers 1
        ```

        ```sh
        API=http://127.0.0.1:5173/api/v1/private
        ```

        ```console
        $ curl -s "$API/projects?name=nothing"
        {"page":1,"size":10,"total":0,"content":[],"sortable_by":[]}
        ```
    """)
    tally = examples.run_page(page, run_dir / "run")
    assert (tally.ran, tally.skipped) == (3, [])
