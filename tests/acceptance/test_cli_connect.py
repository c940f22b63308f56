"""`opik connect`, the real CLI, paired and driven through bridge commands."""
import subprocess
import time

import pytest
import requests

from opik_runners.protocol import activation_hmac_text, bridge_key, read_link_fragment, signature_holds, signed
from tests.support.cli import CLI, LINK, cli_env
from tests.support.databases import fresh_database_url
from tests.support.servers import Server
from tests.support.waiting import wait_until

HELLO = "def greet():\n    return 'hello'\n\n\nprint(greet())\n"


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "hello.py").write_text(HELLO)
    (root / "README.md").write_text("# demo\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "util.py").write_text("def helper():\n    return greet_twice()\n")
    return root


@pytest.fixture(params=["browser", "auto-activate"])
def connected(request, tmp_path, repo):
    """A server and a paired `opik connect`: through the browser's /activate call made by
    this test, or through the server's own auto-activation."""
    auto = request.param == "auto-activate"
    server = Server(fresh_database_url(tmp_path), OPIK_BRIDGE_POLL_TIMEOUT="5",
                    OPIK_PAIRING_AUTO_ACTIVATE="true" if auto else "false").start()
    api = f"{server.url}/api/v1/private"
    assert requests.post(f"{api}/projects", json={"name": "cdemo"}, timeout=5).status_code == 201
    cli = CLI(["connect", "--project", "cdemo", "--non-interactive", "--name", "c-runner"], cwd=repo,
              env=cli_env(server.url, tmp_path / "home"))
    try:
        link = read_link_fragment(cli.wait_for(LINK.pattern)["fragment"])
        assert link["type"] == "connect" and link["runner_name"] == "c-runner"
        project_id = requests.post(f"{api}/projects/retrieve", json={"name": "cdemo"}, timeout=5).json()["id"]
        if not auto:
            # What the pairing page does in the browser.
            activated = requests.post(
                f"{api}/pairing/sessions/{link['session_id']}/activate",
                json={"runner_name": link["runner_name"],
                      "hmac": activation_hmac_text(link["session_id"], link["key"], link["runner_name"])},
                timeout=5,
            )
            assert activated.status_code == 201, activated.text

        def bridge_ready():
            page = requests.get(f"{api}/local-runners", params={"project_id": project_id}, timeout=5).json()
            runner = page["content"][0] if page["content"] else None
            return runner if runner and "bridge" in runner["capabilities"] else None

        runner = wait_until(bridge_ready, timeout=60)
        yield {"server": server, "api": api, "cli": cli, "runner": runner, "repo": repo,
               "key": bridge_key(link["key"], link["session_id"]), "auto": auto}
    finally:
        cli.kill()
        server.stop()


def run(ctx, command_type, args, sign=True, timeout=30):
    """Submit a command, wait for its result with GET ?wait=true, return the command."""
    base = f"{ctx['api']}/local-runners/{ctx['runner']['id']}/bridge/commands"
    body_args = signed(ctx["key"], command_type, args) if sign else args
    submitted = requests.post(base, json={"type": command_type, "args": body_args, "timeout_seconds": timeout},
                              timeout=10)
    assert submitted.status_code == 201, submitted.text
    command_id = submitted.json()["command_id"]
    started = time.monotonic()
    command = requests.get(f"{base}/{command_id}", params={"wait": "true", "timeout": 60}, timeout=90).json()
    assert command["status"] in ("completed", "failed"), command
    assert time.monotonic() - started < 30  # answered when the result arrived, not at the end of the wait
    return command


def test_bridge_round_trips(connected):
    ctx = connected
    repo, key = ctx["repo"], ctx["key"]
    if ctx["auto"]:
        assert ctx["runner"]["name"].startswith("connect-")
    else:
        assert ctx["runner"]["name"] == "c-runner"

    read = run(ctx, "ReadFile", {"path": "hello.py"})
    assert read["status"] == "completed", read
    assert read["result"]["content"].startswith("def greet():")
    assert signature_holds(key, read["status"], read["result"])

    written = run(ctx, "WriteFile", {"path": "notes/new.txt", "content": "from the server\n"})
    assert written["status"] == "completed", written
    assert written["result"]["created"] is True
    assert (repo / "notes" / "new.txt").read_text() == "from the server\n"

    edited = run(ctx, "EditFile", {"path": "hello.py", "edits": [{"old_string": "'hello'", "new_string": "'bonjour'"}]})
    assert edited["status"] == "completed", edited
    assert edited["result"]["edits_applied"] == 1
    assert "return 'bonjour'" in (repo / "hello.py").read_text()

    listed = run(ctx, "ListFiles", {"path": "", "depth": 2})
    assert listed["status"] == "completed", listed
    assert {"hello.py", "README.md", "pkg/"} <= set(listed["result"]["files"])

    found = run(ctx, "SearchFiles", {"pattern": "def (greet|helper)"})
    assert found["status"] == "completed", found
    assert {(m["file"], m["line"]) for m in found["result"]["matches"]} == {("hello.py", 1), ("pkg/util.py", 1)}

    executed = run(ctx, "Exec", {"command": "echo hi && pwd"})
    assert executed["status"] == "completed", executed
    assert executed["result"]["exit_code"] == 0
    assert executed["result"]["stdout"] == f"hi\n{repo}\n"
    assert signature_holds(key, executed["status"], executed["result"])
    assert executed["picked_up_at"] <= executed["completed_at"]

    unsigned = run(ctx, "ReadFile", {"path": "hello.py"}, sign=False)
    assert unsigned["status"] == "failed"
    assert unsigned["error"] == {"code": "auth_failed", "message": "Invalid command HMAC"}

    # Ctrl-C: the CLI disconnects the runner on its way out.
    assert ctx["cli"].interrupt() == 0, ctx["cli"].output
    assert requests.get(f"{ctx['api']}/local-runners/{ctx['runner']['id']}", timeout=5).status_code == 404
