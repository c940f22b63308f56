"""The checks a runner client is graded on, in the order the grader runs them. Each reads what
the client did from the request journal and returns its evidence (journal lines), or raises
Failed (what went wrong, with the evidence) or Skipped (why it does not apply). Each is held to
docs/opik-behaviour.md: a check is right only where the reference says the client must.

One module over 400 lines, on purpose: the thirteen checks read top to bottom in the order the
grader runs them and its scorecard lists them, about 30 lines each, with the helpers each uses
just above it."""
import json
import os
import signal
import time

from ..protocol import (
    BridgeStatus, BridgeType, JobStatus, RunnerType, bridge_key, sign, signature_holds, signed,
)
from ..client.testing import RunnerServerError
from .runner import Skipped, began, check, failed, parse_time

FINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
FAULT_WINDOW_SECONDS = 5.0
RECOVERY_SECONDS = 45.0
HOT_LOOP_PER_SECOND = 3.0  # more requests a second than this while every one fails: no backoff
# How long the answer to a claim is held back while the job is cancelled: a heartbeat of each of two
# streams (a supervisor's and its child's, every 5 s each) comes meanwhile, with time to spare.
CANCEL_HOLD_SECONDS = 13.0
SUPERVISOR = "under opik endpoint, its supervisor's heartbeats: docs/opik-behaviour.md#cli-cancellation"


def body_of(entry):
    try:
        return json.loads(entry.get("request_body") or "null")
    except ValueError:
        return None


def reports(g, job_id, entries=None):
    return [e for e in (entries or g.journal()) if e["path"].endswith(f"/jobs/{job_id}/results")]


def handed_out(entries):
    """Job ids the runner's polls were answered with."""
    ids = set()
    for entry in entries:
        if entry["operation"] == "next_job" and entry.get("status") == 200 and entry.get("response_body") not in (
                None, "null"):
            try:
                ids.add(json.loads(entry["response_body"])["id"])
            except (ValueError, KeyError, TypeError):
                pass
    return ids


def takes_jobs(g):
    if g.runner["type"] != RunnerType.ENDPOINT:
        raise Skipped("a connect runner takes bridge commands, not jobs")


# -- pairing


@check("pairing", "it pairs and registers its agents")
def pairing_and_agents(g):
    entries = g.journal()
    evidence = [g.line(e) for e in entries if e["operation"] in ("create_pairing_session", "activate_pairing_session")]
    evidence.append(f"runner {g.runner['name']!r} ({g.runner['id']}), type {g.runner['type']}")
    if g.runner["type"] == RunnerType.CONNECT:
        return evidence
    registrations = [e for e in g.mine(entries) if e["operation"] == "register_agents" and e.get("status") == 204]
    if not registrations:
        raise failed("no PUT agents was answered 204", evidence)
    agents = g.runner.get("agents") or {}
    evidence.append(g.line(registrations[-1]))
    evidence.append("agents: " + ", ".join(f"{name}({', '.join(p['name'] for p in a.get('params') or [])})"
                                           for name, a in agents.items()))
    return evidence


# -- jobs


@check("jobs", "it claims a job and reports it completed, with its result")
def runs_a_job(g):
    """docs/opik-behaviour.md#job-results: `completed` with a result finishes the job; a `running`
    report and a trace id are optional (the CLI sends both: #cli-job-reports), so they are shown,
    not required."""
    takes_jobs(g)
    agent = g.agent()
    inputs = g.inputs_for(agent)
    job_id = g.create_job(agent, "the first job")
    g.first_job = job_id
    job = g.wait_for_job(job_id)
    entries = g.journal()
    sent = reports(g, job_id, entries)
    evidence = [f"agent {agent!r} called with inputs {json.dumps(inputs)}"]
    evidence += [g.line(e) for e in g.mine(entries) if e["operation"] == "next_job" and job_id in
                 (e.get("response_body") or "")] + [g.line(e) for e in sent]
    if job_id not in handed_out(g.mine(entries)):
        raise failed("the runner never claimed the job (no jobs/next of its was answered with it)", evidence)
    if job["status"] != JobStatus.COMPLETED:
        raise failed(f"the job ended {job['status']!r}, not completed: {job.get('error', '')}", evidence)
    if job.get("result") is None:
        raise failed("the completed job has no result", evidence)
    statuses = [(body_of(e) or {}).get("status") for e in sent]
    optional = [("reported `running` first" if statuses[:1] == [JobStatus.RUNNING] else "no `running` report first"),
                ("with a trace id" if any((body_of(e) or {}).get("trace_id") for e in sent) else "no trace id")]
    return [*evidence[:1], f"{', '.join(optional)} (both optional: docs/opik-behaviour.md#job-results)",
            *evidence[1:]]


@check("jobs", "a failing agent's job is reported failed, with its error")
def reports_a_failure(g):
    takes_jobs(g)
    agents = g.runner.get("agents") or {}
    agent = g.setup.fail_agent or next((name for name in agents if "fail" in name.lower()), None)
    if agent is None:
        raise Skipped("no agent fails by its name: give --fail-agent")
    job_id = g.create_job(agent, "a failing job")
    job = g.wait_for_job(job_id)
    evidence = [g.line(e) for e in reports(g, job_id)]
    if job["status"] != JobStatus.FAILED or not job.get("error"):
        raise failed(f"the job ended {job['status']!r} with error {job.get('error')!r}, not failed with its error",
                     evidence)
    return [f"agent {agent!r}: {job['error']}", *evidence]


@check("jobs", "its logs reach the server with the job")
def flushes_logs(g):
    """docs/opik-behaviour.md#cli-logs: log lines go in batches, in order within a batch and in no
    order against the job's reports; so they must arrive, within a few seconds of its result."""
    takes_jobs(g)
    job_id = getattr(g, "first_job", None)
    if job_id is None:
        raise Skipped("no job ran")
    time.sleep(2)  # a batch sent on the job's last write, at most 0.5 s behind it
    entries = g.journal()
    posted = [e for e in entries if e["path"].endswith(f"/jobs/{job_id}/logs") and e["method"] == "POST"]
    final = [e for e in reports(g, job_id, entries) if (body_of(e) or {}).get("status") in FINAL]
    if not posted:
        raise Skipped("the agent wrote no log lines for its job (nothing to flush)")
    evidence = [g.line(e) for e in posted + final]
    if posted[-1].get("status") != 204:
        raise failed("the server refused its log lines", evidence)
    if final and parse_time(posted[-1]["time"]) - parse_time(final[-1]["time"]) > 5:
        raise failed("log lines came more than 5 s after the job's result", evidence)
    lines = g.server.api("GET", f"/local-runners/jobs/{job_id}/logs", workspace=g.setup.workspace)
    return [f"{len(lines)} log lines kept for the job", *evidence]


def kind_of(heartbeat):
    """A heartbeat's kind: the capabilities it declares, as JSON. Under a supervisor (opik
    endpoint), two processes heartbeat for one runner, each with its own kind."""
    return json.dumps((body_of(heartbeat) or {}).get("capabilities"))


def heartbeat_kinds(g, entries=None):
    return sorted({kind_of(e) for e in g.mine(entries or g.journal())
                   if e["operation"] == "heartbeat" and not e.get("fault")})


def cancel_before_start(g, aim=None):
    """One job claimed, its answer held back (a fault's answer_delay_ms), and cancelled meanwhile,
    so that a heartbeat announces the cancel before the client sees the job. With `aim` (a
    heartbeat kind), the cancel comes just after a heartbeat of another kind, so that `aim`'s next
    beat takes the announcement. Returns (the kind that took it or None, the reports sent for the
    job, evidence lines)."""
    since = g.newest_id()
    rule = g.server.fault(operation="next_job", answer_delay_ms=int(CANCEL_HOLD_SECONDS * 1000))
    try:
        # A poll already held when the rule came is not delayed: let it answer (empty) first.
        try:
            g.server.wait_for(operation="next_job", since=since, timeout_s=g.poll_timeout + 3)
        except AssertionError:
            pass  # no poll was held
        job_id = g.create_job(g.agent(), "a job cancelled before it starts")
        claimed = g.wait_for_job(job_id, until=(JobStatus.RUNNING,), timeout=30)
        if claimed["status"] != JobStatus.RUNNING:
            raise failed(f"the runner did not claim the job within 30 s (it is {claimed['status']!r})")
    finally:
        rule.delete()  # the claiming poll's answer is held back still; the next polls go as usual
    held_until = time.monotonic() + CANCEL_HOLD_SECONDS
    if aim is not None:  # wait (at most a beat's interval and a second) for another kind to beat
        g.wait_for_entry(g.newest_id(), lambda e: e["operation"] == "heartbeat" and kind_of(e) != aim, 6)
    g.server.api("POST", f"/local-runners/jobs/{job_id}/cancel", workspace=g.setup.workspace)
    time.sleep(max(0.0, held_until - time.monotonic()) + 6)  # the held answer, then the reports it starts
    entries = g.mine(g.journal(since))
    announced = [e for e in entries if e["operation"] == "heartbeat" and job_id in (e.get("response_body") or "")]
    sent = reports(g, job_id, entries)
    evidence = [g.line(e) for e in announced + sent]
    job = g.job(job_id)
    if job["status"] != JobStatus.CANCELLED:
        raise failed(f"the job ended {job['status']!r}, not cancelled", evidence)
    if not announced:
        raise failed("no heartbeat of the runner took the announcement while the job was held back", evidence)
    return kind_of(announced[0]), sent, evidence


@check("jobs", "a job announced cancelled before it starts is skipped, and a cancelled job stays cancelled")
def honours_cancels(g):
    """docs/opik-behaviour.md#cli-cancellation: the client checks the ids its heartbeats announce
    when a job is about to start, and skips it without a report. When two kinds of heartbeat come
    for the runner (a supervisor's and its child's), a job is cancelled for each kind to take the
    announcement, so the verdict does not hang on which beat first: a kind whose announcement was
    skipped is the process that runs the jobs; one whose was not is a process that ignores them."""
    takes_jobs(g)
    trials = [cancel_before_start(g)]  # (kind, reports sent, evidence)
    kinds = heartbeat_kinds(g)
    for _ in range(2 * (len(kinds) - 1)):  # a second try for a kind the first aim missed
        untried = [kind for kind in kinds if kind not in {taker for taker, _, _ in trials}]
        if not untried:
            break
        trials.append(cancel_before_start(g, aim=untried[0]))
    evidence = [line for _, _, lines in trials for line in lines]
    ran = sorted({taker for taker, sent, _ in trials if sent})
    skipped = sorted({taker for taker, sent, _ in trials if not sent})
    summary = "; ".join(f"announced on a heartbeat declaring {taker}: {'ran' if sent else 'skipped'}"
                        for taker, sent, _ in trials)
    if not ran:
        return [summary, *evidence]
    if skipped and not set(ran) & set(skipped):  # docs/opik-behaviour.md#cli-cancellation
        raise failed(f"{len(kinds)} kinds of heartbeat come for this runner, and only one process honours the "
                     f"announcements: a job announced on a heartbeat declaring {', '.join(skipped)} was skipped, "
                     f"one announced on a heartbeat declaring {', '.join(ran)} ran ({SUPERVISOR}): a job "
                     "cancelled before it starts runs when that heartbeat beats first", [summary, *evidence])
    raise failed(f"the runner started a job announced cancelled ({summary})", evidence)


# -- heartbeats


@check("heartbeats", "it heartbeats within the TTL, with its capabilities")
def heartbeats(g):
    entries = g.mine(g.journal())
    beats = [e for e in entries if e["operation"] == "heartbeat" and not e.get("fault")]
    observed = time.time() - g.started_at
    if observed < g.setup.heartbeat_ttl + 5:  # at least a TTL and a beat of it
        time.sleep(g.setup.heartbeat_ttl + 5 - observed)
        entries = g.mine(g.journal())
        beats = [e for e in entries if e["operation"] == "heartbeat" and not e.get("fault")]
    starts = sorted(began(e) for e in beats)
    declared = sorted({kind_of(e) for e in beats})
    evidence = [f"{len(beats)} heartbeats; capabilities declared: {', '.join(declared) or 'none'}",
                *[g.line(e) for e in beats[-3:]]]
    if len(starts) < 2:
        raise failed(f"{len(beats)} heartbeat(s) in {time.time() - g.started_at:.0f} s", evidence)
    edges = [parse_time(g.runner["connected_at"]), *starts, time.time()]
    longest = max(later - earlier for earlier, later in zip(edges, edges[1:]))
    evidence.insert(1, f"the longest time without one: {longest:.1f} s (the TTL: {g.setup.heartbeat_ttl:g} s)")
    if longest >= g.setup.heartbeat_ttl:
        raise failed(f"{longest:.1f} s passed without a heartbeat, the TTL is {g.setup.heartbeat_ttl:g} s", evidence)
    return evidence


# -- resilience


def poll_operation(g):
    return "next_job" if g.runner["type"] == RunnerType.ENDPOINT else "next_bridge_commands"


@check("resilience", "under 503s, 429s and dropped connections it backs off, and recovers when they end")
def backs_off(g):
    poll = poll_operation(g)
    windows, evidence, previous = [], [], []
    for effect in ({"status": 503}, {"status": 429}, {"drop": True}):
        # The next window's rules come before the last one's go: no poll slips in between unfaulted.
        rules = [g.server.fault(operation=operation, **effect) for operation in (poll, "heartbeat")]
        for rule in previous:
            rule.delete()
        started = time.time()
        if effect.get("drop") and g.runner["type"] == RunnerType.ENDPOINT:  # its polls are refused meanwhile
            time.sleep(1)
            g.decoy = g.create_job(g.agent(), "a job that waits while the polls fail")
        time.sleep(max(0.0, FAULT_WINDOW_SECONDS - (time.time() - started)))  # (a slow decoy: no wait)
        windows.append((effect, started, time.time(), {rule["id"] for rule in rules}))
        previous = rules
    for rule in previous:
        rule.delete()
    ended = time.time()
    entries = g.mine(g.journal())
    hot = []
    for effect, started, stopped, rule_ids in windows:
        name = "drop" if effect.get("drop") else str(effect["status"])
        for operation in (poll, "heartbeat"):
            hit = [e for e in entries if e["operation"] == operation and e.get("fault") in rule_ids]
            rate = len(hit) / (stopped - started)
            evidence.append(f"{name} on {operation}: {len(hit)} requests in {stopped - started:.1f} s")
            if rate > HOT_LOOP_PER_SECOND:
                hot.append(f"{len(hit)} {operation} requests in {stopped - started:.1f} s under {name}")
    if hot:
        raise failed("it retried without backing off: " + "; ".join(hot), evidence)
    job_id = g.create_job(g.agent(), "a job after the faults") if g.runner["type"] == RunnerType.ENDPOINT else None
    if resumed(g, ended, poll, job_id):
        return evidence + [f"recovered {time.time() - ended:.1f} s after the faults ended"]
    raise failed(f"no poll (and finished job, and heartbeat, if it heartbeats) {RECOVERY_SECONDS:g} s after the "
                 "faults ended", evidence)


def resumed(g, since, poll, job_id):
    """Whether, after `since`, the runner polls and heartbeats (if it ever did) with success
    again and its job finished, within RECOVERY_SECONDS."""
    beats = any(e["operation"] == "heartbeat" for e in g.mine(g.journal()))
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        after = [e for e in g.mine(g.journal()) if parse_time(e["time"]) > since and not e.get("fault")]
        beat = not beats or any(e["operation"] == "heartbeat" and e.get("status") == 200 for e in after)
        polled = any(e["operation"] == poll and e.get("status") == 200 for e in after)
        if beat and polled and (job_id is None or g.job(job_id)["status"] in FINAL):
            return True
        time.sleep(1)
    return False


@check("jobs", "it reports results only for jobs it claimed")
def reports_only_claimed_jobs(g):
    takes_jobs(g)
    entries = g.mine(g.journal())
    claimed = handed_out(entries)
    stray = [e for e in entries if e["operation"] == "report_job_result"
             and e["path"].rsplit("/", 2)[-2] not in claimed]
    if stray:
        raise failed(f"{len(stray)} result(s) for jobs no poll of its was answered with", [g.line(e) for e in stray])
    return [f"{sum(e['operation'] == 'report_job_result' for e in entries)} results, all for the "
            f"{len(claimed)} jobs it claimed"]


# -- the bridge


def offers_bridge(g):
    if not any(e["operation"] == "next_bridge_commands" for e in g.mine(g.journal())):
        raise Skipped("the runner does not poll for bridge commands")
    if g.session is None:
        raise Skipped("the runner's pairing session is not in the store (its key, the bridge key's, is unknown)")
    from ..protocol import decode_base64

    return bridge_key(decode_base64(g.session["activation_key"]), g.session["id"])


def run_command(g, command_type, args):
    """Submit a command to the runner and wait (30 s, held by the server) for its result."""
    runner = g.runner["id"]
    try:
        made = g.server.api("POST", f"/local-runners/{runner}/bridge/commands",
                            {"type": command_type, "args": args, "timeout_seconds": 20}, workspace=g.setup.workspace)
    except RunnerServerError as exc:
        if exc.status == 409:  # docs/opik-behaviour.md#bridge-submit: no bridge capability declared
            raise failed(f"it polls bridge commands, but the server refused one for it: {exc.body!r} (its heartbeats "
                         "must declare the bridge capability: docs/opik-behaviour.md#bridge-submit)") from None
        raise
    # The server holds the wait 30 s at most; the client's own limit is longer, so the server answers first.
    return g.server.call("GET", f"/api/v1/private/local-runners/{runner}/bridge/commands/{made['command_id']}",
                         query={"wait": "true", "timeout": "30"}, headers={"Comet-Workspace": g.setup.workspace},
                         timeout=45)


@check("bridge", "it runs a signed command and signs its result")
def signs_results(g):
    key = offers_bridge(g)
    command = run_command(g, BridgeType.LIST_FILES, signed(key, BridgeType.LIST_FILES, {"path": "."}))
    evidence = [f"ListFiles: {command['status']}, result {json.dumps(command.get('result'))[:200]}"]
    if command["status"] != BridgeStatus.COMPLETED:
        raise failed(f"a signed command ended {command['status']!r}", evidence)
    if not signature_holds(key, command["status"], command.get("result") or {}):
        raise failed("its result's signature does not hold", evidence)
    return evidence


@check("bridge", "it refuses a forged command and runs nothing")
def refuses_forgeries(g):
    key = offers_bridge(g)
    marker = f"conformance-forged-{os.getpid()}.txt"
    forged = signed(os.urandom(32), BridgeType.WRITE_FILE, {"path": marker, "content": "forged"})
    command = run_command(g, BridgeType.WRITE_FILE, forged)
    evidence = [f"WriteFile signed with another key: {command['status']}, error {json.dumps(command.get('error'))}"]
    written = os.path.exists(os.path.join(g.setup.cwd or os.getcwd(), marker))
    if written or command["status"] == BridgeStatus.COMPLETED:
        raise failed("the forged command ran", evidence)
    if command["status"] != BridgeStatus.FAILED or (command.get("error") or {}).get("code") != "auth_failed":
        raise failed(f"it ended {command['status']!r}, not failed with auth_failed", evidence)
    if not signature_holds(key, command["status"], command.get("result") or {}):
        raise failed("the refusal's result is not signed", evidence)
    return evidence + [f"the result's signature is sign(key, 'failed', {{}}): "
                       f"{command['result'].get('_hmac') == sign(key, 'failed', {})}"]


# -- its life


@check("lifecycle", "after the server restarts it resumes on its own")
def resumes_after_restart(g):
    g.restart_server()
    restarted = time.time()
    job_id = g.create_job(g.agent(), "a job after the restart") if g.runner["type"] == RunnerType.ENDPOINT else None
    if not resumed(g, restarted, poll_operation(g), job_id):
        raise failed(f"it did not poll (and finish a job, and heartbeat, if it heartbeats) {RECOVERY_SECONDS:g} s "
                     "after the server restarted")
    first = [e for e in g.mine(g.journal()) if parse_time(e["time"]) > restarted and e.get("status") == 200]
    return [g.line(first[0]), f"resumed {parse_time(first[0]['time']) - restarted:.1f} s after the restart"]


def late_after_410(entries, grace=6.0):
    """(the first 410 of each kind of heartbeat, the heartbeats and polls that started more than
    `grace` s after their process was told). Each kind is held to its own first 410: under a
    supervisor (opik endpoint) the child and the supervisor beat on their own clocks, so the second
    hears its 410 up to a heartbeat period after the first. Polls are held to the last kind's."""
    told = {}
    for e in entries:
        if e["operation"] == "heartbeat" and e.get("status") == 410:
            told.setdefault(kind_of(e), e)
    if not told:
        return told, []
    last = max(parse_time(e["time"]) for e in told.values())
    late = [e for e in entries
            if (e["operation"] == "heartbeat" and kind_of(e) in told
                and began(e) > parse_time(told[kind_of(e)]["time"]) + grace)
            or (e["operation"] in ("next_job", "next_bridge_commands") and began(e) > last + grace)]
    return told, late


@check("lifecycle", "a 410 on its heartbeat ends the runner")
def ends_on_410(g):
    runner = g.runner["id"]
    deleted = time.time()
    g.server.api("DELETE", f"/local-runners/{runner}", workspace=g.setup.workspace)  # as the UI's Disconnect does
    time.sleep(12)
    entries = [e for e in g.mine(g.journal(), runner) if parse_time(e["time"]) > deleted]
    told, later = late_after_410(entries)
    if not told:
        raise Skipped("no heartbeat of the runner came after it was deleted, so no 410 reached it")
    evidence = [*[g.line(e) for e in told.values()], *[g.line(e) for e in later[:5]]]
    if later:
        raise failed(f"{len(later)} heartbeats or polls started more than 6 s after the 410 that ended them", evidence)
    return evidence


@check("lifecycle", "Ctrl-C deletes its runner")
def deletes_on_ctrl_c(g):
    if g.setup.pairing == "grader":
        raise Skipped("the grader paired the runner: deleting it on the way out is its supervisor's part "
                      "(docs/opik-behaviour.md#cli-shutdown)")
    old = g.runner["id"]
    g.stop_client()
    launched = g.newest_id()
    g.launch()
    runner = g.wait_for_runner(exclude={old})
    # Ctrl-C once it runs: its first heartbeat. (opik's supervisor takes the signal from just before
    # its first beat; a Ctrl-C while it pairs ends the command, leaving the runner to the TTL.)
    g.wait_for_entry(launched, lambda e: e["operation"] == "heartbeat", 15, runner["id"])
    since = g.newest_id()
    os.killpg(g.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends the whole group
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        deleted = [e for e in g.journal(since) if e["method"] == "DELETE" and runner["id"] in e["path"]]
        if deleted and g.process.poll() is not None:
            return [g.line(deleted[0]), f"the command exited with {g.process.returncode}"]
        time.sleep(0.5)
    deleted = [e for e in g.journal(since) if e["method"] == "DELETE" and runner["id"] in e["path"]]
    if deleted:
        return [g.line(deleted[0]), "the command had not exited 15 s after Ctrl-C"]
    raise failed("no DELETE of its runner within 15 s of Ctrl-C")


CHECKS = [pairing_and_agents, runs_a_job, reports_a_failure, flushes_logs, honours_cancels, heartbeats, backs_off,
          reports_only_claimed_jobs, signs_results, refuses_forgeries, resumes_after_restart, ends_on_410,
          deletes_on_ctrl_c]
