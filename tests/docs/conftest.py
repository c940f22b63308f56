"""The examples' tally, printed at the end of the run: how many of the README's and the
documentation's examples ran, were written as files, were checked as copies, and were skipped
(with each reason)."""
import pytest

TALLY = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def examples_tally(request):
    """{page: Tally} of the pages whose examples ran in this session."""
    return request.config.stash.setdefault(TALLY, {})


def pytest_terminal_summary(terminalreporter, config):
    tallies = config.stash.get(TALLY, {})
    if not tallies:
        return
    ran = sum(t.ran for t in tallies.values())
    files = sum(t.files for t in tallies.values())
    same = sum(t.same for t in tallies.values())
    shown = sum(t.shown for t in tallies.values())
    skipped = [entry for t in tallies.values() for entry in t.skipped]
    terminalreporter.section("the documentation's examples")
    terminalreporter.write_line(
        f"{len(tallies)} pages: {ran} examples ran, {files} written as files, {same} checked as copies of "
        f"files the suite runs, {len(skipped)} skipped, {shown} shown only (json, yaml, ...)")
    for where, reason in skipped:
        terminalreporter.write_line(f"  skipped {where}: {reason}")
