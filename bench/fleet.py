"""The fleet benchmark: N simulated runners that behave as the CLI does, against a real server.

    python bench/fleet.py                      # sizes 500,1000,2000,3000,4000 on SQLite, 30 s each
    python bench/fleet.py --sizes 1000,1500    # chosen sizes
    python bench/fleet.py --postgres URL       # two instances on PostgreSQL
    python bench/fleet.py --smoke              # 40 runners for 5 s (CI runs it)

Each size gets a fresh server (the shipped configuration, `opik-runners serve`) with N runners
seeded through /_admin/state, each in a project of its own (so a job can be sent to one runner):
80% endpoint runners, 20% connect runners. The runners are driven by simulator processes (asyncio,
aiohttp), each runner as the CLI drives it:

- a heartbeat every 5 s, the first at a random point of the period (so beats spread evenly);
- endpoint: `jobs/next` held and re-issued as soon as it returns; for each job, its logs, then
  its result;
- connect: `bridge/commands/next` held and re-issued; for each command, its result.

Beside them, this process creates jobs at a steady rate for random endpoint runners, submits
bridge commands to random connect runners, and reads random runners' job listings. It reports,
per size: dispatch latency (job created -> the runner's poll answering with it) p50/p99, listing
p50/p99, heartbeat p99, errors (5xx, refused or dropped connections), the server's CPU and RSS,
and the simulators' own CPU (if they use most of a core they are the bottleneck: add --procs).
The knee is the largest size with every p99 at or under 100 ms and no errors.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from opik_runners.client.testing import Server, child_pids  # noqa: E402

API = "/api/v1/private"
HEARTBEAT_SECONDS = 5.0
P99_TARGET_MS = 100.0


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# -- the runners, in simulator processes


async def drive_runners(urls, runners, seconds, results, warmup=HEARTBEAT_SECONDS):
    """Drive `runners` [(id, type)] until `seconds` pass; fill `results`. Each runner starts
    (its first heartbeat, then its poll) at a random point of the first `warmup` seconds, as a
    fleet that connected over time: started together, every idle poll would end together
    10 s later, and again 10 s after that. Heartbeats are timed from the end of the warmup,
    when the whole fleet is up, as the rest of the figures are."""
    deadline = time.time() + seconds
    measure_from = time.time() + warmup
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    received, beats, errors = results["received"], results["beats"], results["errors"]

    async def call(session, method, url, **kwargs):
        try:
            async with session.request(method, url, **kwargs) as response:
                body = await response.read()
                if response.status >= 500:
                    errors.append(f"{response.status} {method} {url.rsplit('/', 1)[-1]}")
                    return None
                return response.status, body
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            if time.time() < deadline:
                errors.append(f"{type(exc).__name__} {method} {url.rsplit('/', 1)[-1]}")
            return None

    async def heartbeat(session, base, runner_id, capabilities, start):
        await asyncio.sleep(start)
        while time.time() < deadline:
            started, measured = time.perf_counter(), time.time() >= measure_from
            answer = await call(session, "POST", f"{base}/local-runners/{runner_id}/heartbeats",
                                json={"capabilities": capabilities})
            if answer is not None and measured:
                beats.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(max(HEARTBEAT_SECONDS - (time.perf_counter() - started), 0))

    async def endpoint(session, base, runner_id, start):
        await asyncio.sleep(start)
        while time.time() < deadline:
            answer = await call(session, "POST", f"{base}/local-runners/{runner_id}/jobs/next")
            if answer is None:
                await asyncio.sleep(0.5)
                continue
            status, body = answer
            job = json.loads(body) if status == 200 else None
            if not job:
                continue
            received.append((job["id"], time.time()))
            await call(session, "POST", f"{base}/local-runners/jobs/{job['id']}/logs",
                       json=[{"stream": "stdout", "text": f"working on {job['id']}"}])
            await call(session, "POST", f"{base}/local-runners/jobs/{job['id']}/results",
                       json={"status": "completed", "result": {"echo": job.get("inputs")}})

    async def connect(session, base, runner_id, start):
        await asyncio.sleep(start)
        while time.time() < deadline:
            answer = await call(session, "POST", f"{base}/local-runners/{runner_id}/bridge/commands/next",
                                json={"max_commands": 10})
            if answer is None:
                await asyncio.sleep(0.5)
                continue
            status, body = answer
            for command in (json.loads(body).get("commands") or []) if status == 200 else []:
                received.append((command["command_id"], time.time()))
                await call(session, "POST",
                           f"{base}/local-runners/{runner_id}/bridge/commands/{command['command_id']}/results",
                           json={"status": "completed", "result": {"ok": True}, "duration_ms": 1})

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for i, (runner_id, kind) in enumerate(runners):
            base, start = urls[i % len(urls)] + API, random.uniform(0, warmup)
            tasks.append(heartbeat(session, base, runner_id, ["jobs"] if kind == "endpoint" else ["bridge"], start))
            poll = endpoint if kind == "endpoint" else connect
            tasks.append(poll(session, base, runner_id, start + 0.001))
        await asyncio.gather(*tasks)


def simulator(urls, runners, seconds, warmup, queue):
    results = {"received": [], "beats": [], "errors": []}
    started = os.times()
    asyncio.run(drive_runners(urls, runners, seconds, results, warmup))
    used = os.times()
    results["cpu_seconds"] = (used.user - started.user) + (used.system - started.system)
    queue.put(results)


# -- the load beside them, in this process


async def load(urls, fleet, seconds, job_rate, command_rate, listing_rate):
    deadline = time.time() + seconds
    created, listing_ms, errors = {}, [], []
    endpoints = [r for r in fleet if r["type"] == "endpoint"]
    connects = [r for r in fleet if r["type"] == "connect"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def steady(rate, act):
            if not rate:
                return
            interval, pending = 1.0 / rate, set()
            next_at = time.time()
            while time.time() < deadline:
                pending.add(asyncio.ensure_future(act()))
                pending = {task for task in pending if not task.done()}
                next_at += interval
                await asyncio.sleep(max(next_at - time.time(), 0))
            if pending:
                await asyncio.wait(pending, timeout=30)

        async def make(what, path, body):
            """Create a job or submit a command; note when it was sent, by the id its Location names."""
            sent = time.time()
            try:
                async with session.post(f"{random.choice(urls)}{API}{path}", json=body) as response:
                    await response.read()
                    if response.status == 201:
                        created[response.headers["Location"].rsplit("/", 1)[1]] = sent
                    else:
                        errors.append(f"{response.status} {what}")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors.append(f"{type(exc).__name__} {what}")

        def create_job():
            runner = random.choice(endpoints)
            return make("create job", "/local-runners/jobs",
                        {"agent_name": "echo", "project_id": runner["project_id"], "inputs": {"n": 1}})

        def submit_command():
            runner = random.choice(connects)
            return make("submit command", f"/local-runners/{runner['id']}/bridge/commands",
                        {"type": "ListFiles", "args": {"path": ""}})

        async def read_listing():
            runner = random.choice(fleet)
            started = time.perf_counter()
            try:
                async with session.get(f"{random.choice(urls)}{API}/local-runners/{runner['id']}/jobs") as response:
                    await response.read()
                    if response.status != 200:
                        errors.append(f"{response.status} listing")
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors.append(f"{type(exc).__name__} listing")
                return
            listing_ms.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(steady(job_rate, create_job), steady(command_rate if connects else 0, submit_command),
                             steady(listing_rate, read_listing))
    return created, listing_ms, errors


# -- one size


def seed_fleet(url, size):
    """N runners, each in a project of its own, connected, with an `echo` agent (endpoint)."""
    import requests

    fleet = []
    for i in range(size):
        kind = "connect" if i % 5 == 4 else "endpoint"
        fleet.append({"id": str(uuid.uuid4()), "type": kind, "project": f"fleet-{i}", "name": f"runner-{i}"})
    document = {"version": 1, "runners": [
        {"id": r["id"], "project": r["project"], "name": r["name"], "type": r["type"], "status": "connected",
         "capabilities": ["jobs"] if r["type"] == "endpoint" else ["bridge"],
         **({"agents": {"echo": {"params": [{"name": "n", "type": "integer"}]}}} if r["type"] == "endpoint" else {})}
        for r in fleet]}
    loaded = requests.post(f"{url}/_admin/state", json=document, timeout=300)
    loaded.raise_for_status()
    projects = {p["name"]: p["id"] for p in requests.get(f"{url}/_admin/state", timeout=300).json()["projects"]}
    for runner in fleet:
        runner["project_id"] = projects[runner["project"]]
    return fleet


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def rss_mib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def server_pids(servers):
    return [pid for server in servers for pid in [server.process.pid, *child_pids(server.process.pid)]]


def run_size(size, args, tmp):
    url = args.postgres or f"sqlite:///{tmp / f'fleet-{size}.db'}"
    if args.postgres:
        import psycopg2

        conn = psycopg2.connect(args.postgres)
        conn.autocommit = True
        conn.cursor().execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        conn.close()
    env = dict(item.split("=", 1) for item in args.env)
    servers = [Server(url, OPIK_RUNNERS_LOG_LEVEL="warning", **env).start(timeout=60) for _ in range(args.instances)]
    try:
        urls = [server.url for server in servers]
        fleet = seed_fleet(urls[0], size)
        pids = server_pids(servers)
        queue = multiprocessing.Queue()
        slices = [fleet[i::args.procs] for i in range(args.procs)]
        warmup = min(HEARTBEAT_SECONDS, args.seconds / 4)  # until every runner is polling and beating
        sims = [multiprocessing.Process(target=simulator, args=(
            urls, [(r["id"], r["type"]) for r in part], args.seconds + 2, warmup, queue)) for part in slices]
        for sim in sims:
            sim.start()
        time.sleep(warmup)
        cpu_before, wall_before = cpu_seconds(pids), time.monotonic()
        created, listing_ms, errors = asyncio.run(load(
            urls, fleet, args.seconds - warmup, args.job_rate, args.command_rate, args.listing_rate))
        cpu_used, wall = cpu_seconds(pids) - cpu_before, time.monotonic() - wall_before
        rss = rss_mib(server_pids(servers))
        server_side = server_p99s(urls[0])
        results = [queue.get(timeout=120) for _ in sims]
        for sim in sims:
            sim.join(30)
    finally:
        for server in servers:
            log = server.stop()
            if args.show_log:
                print(log[-20000:])
    received = {}
    for part in results:
        received.update(dict(part["received"]))
        errors.extend(part["errors"])
    dispatch = [(received[item] - sent) * 1000 for item, sent in created.items() if item in received]
    beats = [ms for part in results for ms in part["beats"]]
    sim_cpu = max(part["cpu_seconds"] for part in results) / (args.seconds + 2)
    figures = {
        "size": size, "dispatch_p50": percentile(dispatch, 50), "dispatch_p99": percentile(dispatch, 99),
        "undelivered": len(created) - len(dispatch), "listing_p50": percentile(listing_ms, 50),
        "listing_p99": percentile(listing_ms, 99), "heartbeat_p99": percentile(beats, 99), "heartbeats": len(beats),
        "errors": len(errors), "error_kinds": sorted(set(errors))[:5], "server_cpu": cpu_used / wall,
        "server_rss_mib": rss, "simulator_cpu": sim_cpu, "server_p99": server_side,
    }
    figures["ok"] = (figures["errors"] == 0 and figures["undelivered"] == 0
                     and max(figures["dispatch_p99"], figures["listing_p99"], figures["heartbeat_p99"]) <= P99_TARGET_MS)
    return figures


def server_p99s(url):
    """The server's own latency histogram (GET /metrics): p99 by operation, in ms (the bucket's
    upper bound), to tell the server's time from the network's and the simulators'."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    buckets = {}
    for family in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name == "opik_runners_request_duration_seconds_bucket":
                op, le = sample.labels["operation"], float(sample.labels["le"])
                buckets.setdefault(op, {})
                buckets[op][le] = buckets[op].get(le, 0) + sample.value
    p99 = {}
    for op in ("heartbeat", "list_jobs", "create_job"):
        counts = sorted(buckets.get(op, {}).items())
        if counts:
            total = counts[-1][1]
            p99[op] = next((le for le, n in counts if n >= 0.99 * total), float("inf")) * 1000
    return p99


def describe(f):
    return (f"N={f['size']}: dispatch p50/p99 {f['dispatch_p50']:.1f}/{f['dispatch_p99']:.1f} ms, listing "
            f"p50/p99 {f['listing_p50']:.1f}/{f['listing_p99']:.1f} ms, heartbeat p99 {f['heartbeat_p99']:.1f} ms "
            f"({f['heartbeats']} beats), errors {f['errors']}{' ' + str(f['error_kinds']) if f['errors'] else ''}, "
            f"undelivered {f['undelivered']}, server CPU {f['server_cpu']:.2f} cores, RSS {f['server_rss_mib']:.0f} MiB, "
            f"simulator CPU {f['simulator_cpu']:.2f} cores each; the server's own p99 (bucket bounds, whole run): "
            f"{', '.join(f'{op} <= {ms:g} ms' for op, ms in f['server_p99'].items())} -> {'ok' if f['ok'] else 'over'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", default="500,1000,2000,3000,4000", help="fleet sizes to try, in order")
    parser.add_argument("--seconds", type=float, default=30, help="how long each size runs")
    parser.add_argument("--procs", type=int, default=2, help="simulator processes")
    parser.add_argument("--job-rate", type=float, default=20, help="jobs created a second")
    parser.add_argument("--command-rate", type=float, default=5, help="bridge commands submitted a second")
    parser.add_argument("--listing-rate", type=float, default=10, help="listings read a second")
    parser.add_argument("--postgres", help="a PostgreSQL URL (wiped): two instances share it")
    parser.add_argument("--instances", type=int, default=None, help="server instances (default 1; 2 on PostgreSQL)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the servers (repeatable), e.g. OPIK_RUNNERS_JOURNAL_SIZE=0")
    parser.add_argument("--show-log", action="store_true", help="print the servers' logs after each size")
    parser.add_argument("--smoke", action="store_true", help="40 runners for 5 s")
    args = parser.parse_args()
    args.instances = args.instances or (2 if args.postgres else 1)
    if args.smoke:
        args.sizes, args.seconds, args.job_rate, args.command_rate, args.listing_rate = "40", 5, 10, 2, 5
    tmp = Path(tempfile.mkdtemp(prefix="opik-fleet-"))
    knee = None
    print(f"## fleet on {'PostgreSQL, ' + str(args.instances) + ' instances' if args.postgres else 'SQLite'}: "
          f"{args.job_rate:g} jobs/s, {args.command_rate:g} commands/s, {args.listing_rate:g} listings/s, "
          f"{args.seconds:g} s a size", flush=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        figures = run_size(size, args, tmp)
        print("  " + describe(figures), flush=True)
        if figures["ok"]:
            knee = size
        else:
            break
    print(f"knee: {knee if knee is not None else 'below the smallest size tried'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
