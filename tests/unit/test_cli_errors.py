"""The commands that open the database say what is wrong with it in one line, as `serve` does,
instead of a traceback: a SQLite file in a directory that does not exist (the first thing a
newcomer who skips `mkdir` meets)."""
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args", [["migrate", "--check"], ["reap"], ["seed", "-"]])
def test_a_database_that_cannot_be_opened_is_one_line_not_a_traceback(tmp_path, args):
    missing = tmp_path / "no-such-directory" / "opik-runners.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{missing}"}
    ran = subprocess.run([sys.executable, "-m", "opik_runners", *args], input="{}", env=env, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert ran.stderr.strip() == (f"Error: cannot open the database at sqlite:///{missing}: unable to open database "
                                  f"file ({missing.parent} does not exist)")
