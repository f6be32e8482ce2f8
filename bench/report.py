#!/usr/bin/python3
"""bench/report.py RESULTS_DIR [--wschat BIN] [--docs DIR]

Reads the per-run JSON that bench/run.sh wrote (SERVER.SCENARIO.RUN.json),
takes the median of each figure over the runs, and writes
docs/BENCHMARKS.md plus the gnuplot charts docs/bench-deliveries.png and
docs/bench-latency.png. Standard library only.
"""
import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_NAMES = {
    "wschat": "wschat",
    "lws": "libwebsockets",
    "uws": "uWebSockets",
    "node": "Node ws",
    "fastapi": "FastAPI demo",
}
SCENARIO_TITLES = {
    "fanout_1x100": "fan-out 1 room × 100 conns, all publishing (closed loop, window 1, 64 B)",
    "fanout_1x1000_rate": "fan-out 1 room × 1,000 conns, 1 publisher at 100 msg/s (100,000 deliveries/s, open loop)",
    "fanout_100x10": "fan-out 100 rooms × 10 conns, all publishing (closed loop, window 1, 64 B)",
    "echo": "echo 100 conns × 16 in flight (64 B)",
    "connect": "connect: idle connections (rooms of 100 on /ws/ROOM)",
    "connect_echo": "connect: idle connections on /echo (no rooms: the transport alone)",
}
# (scenario, label, getter, unit, higher_is_better, format)
METRICS = [
    ("fanout_1x100", "deliveries/s", lambda j: j["deliveries_per_s"], "", True, "{:,.0f}"),
    ("fanout_1x100", "latency p99", lambda j: j["latency_ms"]["p99"], " ms", False, "{:,.2f}"),
    ("fanout_1x100", "server CPU per delivery", lambda j: j["server_cpu_ns_per_delivery"], " ns", False, "{:,.0f}"),
    ("fanout_1x1000_rate", "deliveries/s achieved", lambda j: j["deliveries_per_s"], "", True, "{:,.0f}"),
    ("fanout_1x1000_rate", "latency p50", lambda j: j["latency_ms"]["p50"], " ms", False, "{:,.2f}"),
    ("fanout_1x1000_rate", "latency p90", lambda j: j["latency_ms"]["p90"], " ms", False, "{:,.2f}"),
    ("fanout_1x1000_rate", "latency p99", lambda j: j["latency_ms"]["p99"], " ms", False, "{:,.2f}"),
    ("fanout_1x1000_rate", "latency p99.9", lambda j: j["latency_ms"]["p999"], " ms", False, "{:,.2f}"),
    ("fanout_1x1000_rate", "latency max", lambda j: j["latency_ms"]["max"], " ms", False, "{:,.2f}"),
    ("fanout_1x1000_rate", "server CPU per delivery", lambda j: j["server_cpu_ns_per_delivery"], " ns", False, "{:,.0f}"),
    ("fanout_100x10", "deliveries/s", lambda j: j["deliveries_per_s"], "", True, "{:,.0f}"),
    ("fanout_100x10", "latency p99", lambda j: j["latency_ms"]["p99"], " ms", False, "{:,.2f}"),
    ("fanout_100x10", "server CPU per delivery", lambda j: j["server_cpu_ns_per_delivery"], " ns", False, "{:,.0f}"),
    ("echo", "echoes/s", lambda j: j["deliveries_per_s"], "", True, "{:,.0f}"),
    ("echo", "latency p99", lambda j: j["latency_ms"]["p99"], " ms", False, "{:,.2f}"),
    ("echo", "server CPU per echo", lambda j: j["server_cpu_ns_per_delivery"], " ns", False, "{:,.0f}"),
    ("echo", "generator CPU (of the run)", lambda j: 100.0 * j["client_cpu_s"] / j["duration_s"], " %", False, "{:,.0f}"),
    ("connect", "connections accepted/s", lambda j: j["accept_per_s"], "", True, "{:,.0f}"),
    ("connect", "server RSS per idle connection", lambda j: j["rss_per_conn_bytes"], " B", False, "{:,.0f}"),
    ("connect", "connections open", lambda j: j["opened"], "", True, "{:,.0f}"),
    ("connect_echo", "connections accepted/s", lambda j: j["accept_per_s"], "", True, "{:,.0f}"),
    ("connect_echo", "server RSS per idle connection", lambda j: j["rss_per_conn_bytes"], " B", False, "{:,.0f}"),
    ("connect_echo", "connections open", lambda j: j["opened"], "", True, "{:,.0f}"),
]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def load(results):
    runs = {}  # (server, scenario) -> [json]
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        m = re.match(r"(\w+)\.(\w+)\.(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        try:
            with open(path) as f:
                j = json.load(f)
        except (OSError, ValueError):
            continue
        j["_run"] = int(m.group(3))
        runs.setdefault((m.group(1), m.group(2)), []).append(j)
    return runs


def meta(results):
    d = {}
    try:
        with open(os.path.join(results, "meta.txt")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    d[k] = v
    except OSError:
        pass
    return d


def median(runs, get):
    vals = []
    for j in runs:
        try:
            v = get(j)
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        if v is None or v < 0:
            continue
        vals.append(v)
    return statistics.median(vals) if vals else None


def ok_runs(rs):
    return [j for j in rs if j.get("ok", False)]


def fmt(v, f, unit):
    return "—" if v is None else f.format(v) + unit


def versions(wschat_bin, commit):
    v = {}
    v["wschat"] = (sh(f"{wschat_bin} --version") or "?") + (f", built from commit {commit}" if commit else "")
    v["libwebsockets"] = sh("dpkg-query -W -f='${Version}' libwebsockets-dev") or sh("pkg-config --modversion libwebsockets") or "?"
    node = sh("node --version")
    ws = "?"
    try:
        with open(os.path.join(ROOT, "bench/peers/node_modules/ws/package.json")) as f:
            ws = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    v["Node ws"] = f"ws {ws} on Node {node}"
    v["FastAPI demo"] = sh(
        "/usr/bin/python3 -c 'import sys, fastapi, uvicorn, websockets; "
        "print(\"FastAPI\", fastapi.__version__, \"uvicorn\", uvicorn.__version__, "
        "\"websockets\", websockets.__version__, \"Python\", sys.version.split()[0])'"
    ) or "?"
    uws = os.environ.get("UWS_DIR", "/work/peers")
    v["uWebSockets"] = " + ".join(
        f"{name} {sh(f'git -C {uws}/{name} log -1 --format=%h') or '?'}" for name in ("uWebSockets", "uSockets"))
    v["libuv"] = sh("pkg-config --modversion libuv") or "?"
    v["compiler"] = sh("cc --version | head -1") or "?"
    v["kernel"] = platform.release()
    return v


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    return f"{os.cpu_count()} CPUs ({model}), {mem} RAM, Linux {platform.release()}"


def gnuplot(script):
    try:
        r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print("report: gnuplot failed:", r.stderr, file=sys.stderr)
    except OSError as e:
        print("report: gnuplot not available:", e, file=sys.stderr)


def charts(runs, servers, results, docs):
    # deliveries/s per server and scenario
    scen = [("fanout_1x100", "fan-out 1x100"), ("fanout_100x10", "fan-out 100x10"), ("echo", "echo 100x16")]
    dat = os.path.join(results, "deliveries.dat")
    with open(dat, "w") as f:
        f.write("scenario " + " ".join(f'"{SERVER_NAMES.get(s, s)}"' for s in servers) + "\n")
        for key, title in scen:
            row = []
            for s in servers:
                v = median(ok_runs(runs.get((s, key), [])), lambda j: j["deliveries_per_s"])
                row.append("0" if v is None else f"{v:.0f}")
            f.write(f'"{title}" ' + " ".join(row) + "\n")
    n = len(servers)
    plots = ", ".join(
        f"'{dat}' using {i + 2}:xtic(1) title columnheader({i + 2})" for i in range(n)
    )
    gnuplot(f"""
set terminal pngcairo size 900,500 font ",10"
set output '{os.path.join(docs, "bench-deliveries.png")}'
set title "Deliveries per second (median of runs; higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top right
set grid ytics
set format y "%.0s%c"
set ylabel "deliveries/s"
set yrange [0:*]
plot {plots}
""")
    # latency percentiles of the 100,000 deliveries/s scenario
    dat2 = os.path.join(results, "latency.dat")
    pcts = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")]
    with open(dat2, "w") as f:
        f.write("pct " + " ".join(f'"{SERVER_NAMES.get(s, s)}"' for s in servers) + "\n")
        for k, label in pcts:
            row = []
            for s in servers:
                v = median(ok_runs(runs.get((s, "fanout_1x1000_rate"), [])), lambda j, k=k: j["latency_ms"][k])
                row.append("NaN" if v is None else f"{max(v, 0.001):.4f}")
            f.write(f'"{label}" ' + " ".join(row) + "\n")
    if not any((s, "fanout_1x1000_rate") in runs for s in servers):
        return
    plots2 = ", ".join(
        f"'{dat2}' using {i + 2}:xtic(1) title columnheader({i + 2})" for i in range(n)
    )
    gnuplot(f"""
set terminal pngcairo size 900,500 font ",10"
set output '{os.path.join(docs, "bench-latency.png")}'
set title "Latency, 1 room x 1,000 conns, 100 msg/s = 100,000 deliveries/s (lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
set logscale y
set ylabel "ms (log scale)"
plot {plots2}
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--wschat", default=os.path.join(ROOT, "build/wschat"))
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    a = ap.parse_args()
    runs = load(a.results)
    m = meta(a.results)
    if not runs:
        print("report: no results in", a.results, file=sys.stderr)
        return 1
    order = ["wschat", "uws", "lws", "node", "fastapi"]
    servers = [s for s in order if any(k[0] == s for k in runs)]
    servers += sorted({k[0] for k in runs} - set(servers))
    peers = [s for s in servers if s != "wschat"]
    scenarios = [s for s in SCENARIO_TITLES if any(k[1] == s for k in runs)]
    os.makedirs(a.docs, exist_ok=True)
    charts(runs, servers, a.results, a.docs)

    out = []
    w = out.append
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w("# Benchmarks\n")
    w("wschat against the WebSocket servers people would pick instead, on the same workload, measured by")
    w("the project's own load generator, `wschat-bench` (tools/wschat-bench/). Written by `make bench`")
    w(f"(bench/run.sh, bench/report.py) on {date}; raw per-run JSON in `bench/results/{os.path.basename(os.path.normpath(a.results))}/` (not committed).\n")
    if m.get("quick") == "1":
        w("> **QUICK pass** (1 run, short durations, small connect): a smoke test, not the figures to quote.\n")
    w("## Results\n")
    nruns = m.get("runs", "?")
    w(f"Each figure is the median of {nruns} runs; every server restarted for every run. "
      "Ratio columns are wschat ÷ peer: for rates higher means wschat is ahead, for latency, CPU and memory lower means wschat is ahead. "
      "A run whose deliveries did not all verify (lost, duplicated, reordered, corrupt, or a connection error) is marked ✗ with its error count; "
      "when every run of a cell failed, its median is still shown after the ✗ but gets no ratio. The first FAULT lines of a failed run are listed under the table.\n")
    head = "| scenario | metric | " + " | ".join(SERVER_NAMES.get(s, s) for s in servers) + " | " + \
        " | ".join(f"wschat ÷ {SERVER_NAMES.get(p, p)}" for p in peers) + " |"
    w(head)
    w("|" + "---|" * (2 + len(servers) + len(peers)))
    for sc in scenarios:
        first = True
        for (msc, label, get, unit, hib, f) in METRICS:
            if msc != sc:
                continue
            cells = []
            vals = {}
            for s in servers:
                rs = runs.get((s, sc), [])
                good = [j for j in rs if j.get("ok", False)]
                bad = [j for j in rs if not j.get("ok", False)]
                v = median(good, get)
                vals[s] = v
                if not rs:
                    c = "—"
                elif not good:
                    c = f"✗ {fmt(median(bad, get), f, unit)} (all {len(rs)} runs failed verification, up to {max(j.get('errors', 0) for j in bad)} errors)"
                else:
                    c = fmt(v, f, unit)
                    if bad:
                        c += f" (✗ {len(bad)}/{len(rs)} runs failed, median of the rest)"
                cells.append(c)
            ratios = []
            no_ratio = label.startswith("generator") or label == "connections open"
            for p in peers:
                if not no_ratio and vals.get("wschat") is not None and vals.get(p):
                    ratios.append(f"{vals['wschat'] / vals[p]:.2f}×")
                else:
                    ratios.append("—")
            title = f"**{SCENARIO_TITLES[sc]}**" if first else ""
            first = False
            w(f"| {title} | {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    w("")
    failed = []
    for (s, sc), rs in sorted(runs.items()):
        for j in rs:
            if not j.get("ok", False):
                failed.append((s, sc, j.get("_run", 0), j))
    if failed:
        w("Failed runs (first fault lines from the generator's stderr):\n")
        for s, sc, i, j in failed:
            errf = os.path.join(a.results, f"{s}.{sc}.{i}.err")
            first = ""
            try:
                with open(errf) as f:
                    lines = [l.strip() for l in f if "FAULT" in l]
                if lines:
                    first = lines[0].replace("wschat-bench: FAULT ", "")
                    if len(lines) > 1:
                        first += f" (and {len(lines) - 1} more FAULT lines shown; {j.get('errors', '?')} errors in all)"
            except OSError:
                pass
            w(f"- {SERVER_NAMES.get(s, s)}, {sc}, run {i}: `{first or 'errors=' + str(j.get('errors'))}`")
        w("")
    w("![deliveries per second](bench-deliveries.png)\n")
    w("![latency percentiles at 100,000 deliveries/s](bench-latency.png)\n")

    # notes derived from the data
    notes = []
    for sc in ("fanout_1x100", "fanout_100x10", "echo"):
        for s in servers:
            rs = ok_runs(runs.get((s, sc), []))
            cpu = median(rs, lambda j: 100.0 * j["client_cpu_s"] / j["duration_s"])
            scpu = median(rs, lambda j: 100.0 * j["server_cpu_s"] / j["duration_s"])
            if cpu is not None and cpu >= 85:
                notes.append(f"- {sc} against {SERVER_NAMES.get(s, s)}: the generator used {cpu:.0f} % of its CPU (the server {scpu or 0:.0f} %), "
                             "so that rate is bounded by the generator, not the server; compare server CPU per delivery instead.")
            elif s == "wschat" and cpu is not None and scpu is not None and scpu < 85:
                notes.append(f"- {sc} against wschat: neither side was saturated (server {scpu:.0f} % of its CPU, generator {cpu:.0f} %): "
                             "with a window of 1 the rate is bounded by the round trip between the two processes; server CPU per delivery "
                             "is the figure that shows headroom.")
    for s in servers:
        rs = ok_runs(runs.get((s, "fanout_1x1000_rate"), []))
        d = median(rs, lambda j: j["deliveries_per_s"])
        if d is not None and d < 95000:
            notes.append(f"- {SERVER_NAMES.get(s, s)} could not sustain 100,000 deliveries/s ({d:,.0f}/s delivered during the window): "
                         "its queue grew for the whole run, which is what its latency percentiles show (measured from the scheduled send time).")
    if notes:
        w("Notes from this run:\n")
        out.extend(notes)
        w("")

    w("## What is measured\n")
    w("- **fan-out** (`wschat-bench fanout`): R rooms × C connections on `/ws/ROOM`, P publishers per room, S-byte text messages. "
      "Closed loop: each publisher keeps W messages in flight and sends the next when its own copy comes back. "
      "Open loop (`--rate`): a fixed total rate on a schedule; latency is measured from the *scheduled* send time, so a server that falls behind "
      "is charged for the whole queue (no coordinated omission). A delivery is one message arriving at one member; deliveries/s counts those that "
      "arrived in the measured window (after `--warmup`).")
    w("- **echo** (`wschat-bench echo`): C connections on `/echo`, D messages in flight each.")
    w("- **connect** (`wschat-bench connect`): C connections opened with at most K handshakes at a time, spread over rooms of 100 on `/ws/ROOM`; "
      "accepted/s is C over the time from the first connect to the last 101; RSS per connection is the server's VmRSS "
      "(/proc/PID/status) after a 2 s settle minus before, over C.")
    w("- **Verification, not counting.** Every payload is `b:<run>:<sender>:<seq>:<t_ns>:` padded to S bytes; every member checks every delivery "
      "against per-(recipient, sender) state: each message exactly once, in per-sender order, byte-exact. Losses (after a drain), duplicates, "
      "reorderings, corrupt or misrouted payloads, server `error`s and dropped connections each fail the run (exit 1). "
      "wschat's JSON `message` wrapping (payload in `text`) and its chatter (`welcome`, `joined`, `presence`, `ack`) are recognised; "
      "other servers deliver the payload verbatim. Before measuring, a probe message is repeated in each room until every member has seen one, "
      "so every connection is known to be subscribed.")
    w("- **Latency** comes from a log-linear histogram (1/128 precision, no per-sample storage). **CPU**: the generator's from getrusage, "
      "the server's from /proc/PID/stat (utime+stime, all threads) over the measured window; per delivery = server CPU ÷ deliveries in the window.")
    w("- **Placement**: each server pinned to CPU 0 (`taskset`), the generator to CPU 1; every server started fresh for every run; "
      "loopback TCP with the generator's connections spread over source addresses 127.0.0.2, 127.0.0.3, …\n")

    w("## Running wschat-bench by hand\n")
    w("```")
    w("build/tools/wschat-bench/wschat-bench fanout  --url ws://127.0.0.1:8000 --rooms 1 --conns 100 --window 1 --size 64 --duration 10")
    w("build/tools/wschat-bench/wschat-bench fanout  --url ws://127.0.0.1:8000 --rooms 1 --conns 1000 --pubs 1 --rate 100")
    w("build/tools/wschat-bench/wschat-bench echo    --url ws://127.0.0.1:8000 --conns 100 --inflight 16")
    w("build/tools/wschat-bench/wschat-bench connect --url ws://127.0.0.1:8000 --conns 15000 --rooms 150 --server-pid $(pidof wschat)")
    w("build/tools/wschat-bench/wschat-bench --help   # every option")
    w("```\n")
    w("A progress line goes to stderr every second; the last line on stdout is machine-readable, e.g.\n")
    w("```")
    w("RESULT scenario=fanout rooms=1 conns=100 pubs=100 size=64 mode=closed window=1 duration_s=10.00 sent=... deliveries=... "
      "msgs_per_s=... deliveries_per_s=... p50_ms=... p90_ms=... p99_ms=... p999_ms=... max_ms=... client_cpu_s=... server_cpu_s=... "
      "server_cpu_ns_per_delivery=... lost=0 duplicates=0 reordered=0 corrupt=0 errors=0")
    w("```\n")
    w("`--json FILE` writes everything (configuration, counts, latency percentiles, CPU, every verification counter). "
      "Exit status: 0 when every delivery verified, 1 on any fault (a `FAULT` line on stderr says which), 2 on bad usage. "
      "`--server-pid` adds server CPU (and, for `connect`, RSS); `--warmup`, `--duration`, `--drain-timeout`, `--join-timeout`, "
      "`--concurrency` (handshakes in flight) and `--per-addr` (connections per source address) tune the run. "
      "The generator raises its own file limit to the hard limit (20,000 here) and refuses runs that would not fit.\n")
    w("Its own tests: `tests/integration/bench_faults.test.mjs` (a deliberately faulty server — tests/bench/faulty_server.mjs — that drops, "
      "duplicates or reorders one message must make every run fail with the right fault), `tests/integration/bench_wschat.test.mjs` "
      "(short fan-out, open-loop, echo and connect runs against wschat must verify), and the codec's unit test "
      "`tools/wschat-bench/test_wsc.c` (CTest `bench.test_wsc`).\n")
    w("## The servers\n")
    w("| server | what | started as |")
    w("|---|---|---|")
    desc = {
        "wschat": "this project, default configuration, SQLite history on (every message stored before it is acknowledged)",
        "lws": "bench/peers/lws_server.c: libwebsockets in the style of its minimal-ws-server-ring / -echo examples",
        "uws": "bench/peers/uws_server.cpp: uWebSockets, a room is a pub/sub topic (subscribe on open, App::publish); built from source outside the tree (bench/peers/README.md)",
        "node": "bench/peers/node_ws.mjs: Node `ws`, the README's broadcast loop, clients grouped by room",
        "fastapi": "bench/peers/fastapi_demo.py: the talk's FastAPI + uvicorn demo, a ConnectionManager looping over the room's sockets",
    }
    for s in servers:
        w(f"| {SERVER_NAMES.get(s, s)} | {desc.get(s, '')} | `{m.get('server.' + s, '?')}` |")
    w("")
    w("## Machine and versions\n")
    w(f"- machine: {machine()}")
    w(f"- date: {date}")
    for k, v in versions(a.wschat, m.get("wschat_commit", "")).items():
        w(f"- {k}: {v}")
    w(f"- load average (1/5/15 min) when the matrix started: {m.get('loadavg_start', '?')}; when it ended: {m.get('loadavg_end', '?')}. "
      "The machine is shared: anything else running competes for the same two CPUs, so compare servers within one run of the matrix, not across runs.")
    w(f"- runs per figure: {m.get('runs', '?')}; measured window {m.get('duration', '?')} s after {m.get('warmup', '?')} s warm-up; "
      f"servers on CPU {m.get('server_cpu', '?')}, generator on CPU {m.get('bench_cpu', '?')}")
    w("")
    w("## Exact commands\n")
    w("```")
    w("make bench            # = scripts/install-deps.sh --bench; build; bash bench/run.sh")
    w("QUICK=1 bash bench/run.sh   # smoke pass")
    for k, v in m.items():
        if k.startswith("server."):
            w(f"{k[7:]:8s} {v}")
    for k, v in m.items():
        if k.startswith("scenario."):
            w(f"{k[9:]:19s} {v}")
    w("```")
    w("")
    path = os.path.join(a.docs, "BENCHMARKS.md")
    # Sections written by other benchmark scripts (bench/tls_deflate.sh)
    # sit after KEEP_MARKER and survive a regeneration.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if KEEP_MARKER in old:
            kept = old[old.index(KEEP_MARKER):]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
        if kept:
            f.write("\n" + kept)
    print("report: wrote", path, file=sys.stderr)
    return 0


KEEP_MARKER = "<!-- sections below are kept when report.py regenerates this file -->"


if __name__ == "__main__":
    sys.exit(main())
