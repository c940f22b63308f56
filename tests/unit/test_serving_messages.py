"""What `opik-runners serve` says when the SQLite file cannot be opened (store.db.explain_open_failure). The
unwritable case needs a user other than root: tests/image runs it in the image, as uid 10001."""
import os

from opik_runners.store.db import explain_open_failure as why_sqlite_cannot_write


def test_a_missing_directory_is_named(tmp_path):
    missing = tmp_path / "no-such-dir"
    assert why_sqlite_cannot_write(f"sqlite:///{missing}/x.db") == f" ({missing} does not exist)"


def test_nothing_is_added_when_the_directory_is_writable_or_the_database_is_not_a_file(tmp_path):
    assert why_sqlite_cannot_write(f"sqlite:///{tmp_path}/x.db") == ""
    assert why_sqlite_cannot_write("sqlite:///:memory:") == ""
    assert why_sqlite_cannot_write("postgresql://opik:opik@127.0.0.1:5432/opik") == ""


def test_a_relative_path_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert why_sqlite_cannot_write("sqlite:///sub/x.db") == f" ({os.path.join(tmp_path, 'sub')} does not exist)"
