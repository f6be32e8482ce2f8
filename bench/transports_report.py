#!/usr/bin/python3
"""bench/transports_report.py RESULTS.jsonl DOCS_DIR SERVER_CMD BENCH_CMD HELD_CMD MACHINE

Reads the JSON lines of `wschat-bench transports` (bench/transports.sh) and
writes DOCS_DIR/TRANSPORTS.md and the chart DOCS_DIR/transports.png
(gnuplot). Says, with the measured ratios, where the talk's claims held.
Standard library only.
"""
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone


def load(path):
    runs, held = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            if d.get("scenario") == "transports":
                runs.append(d)
            elif d.get("scenario") == "transports-held":
                held = d
    return runs, held


def chart(runs, out_png):
    names = [r["transport"] for r in runs]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "t.dat")
        with open(data, "w") as f:
            for i, r in enumerate(runs):
                f.write(f'{i} "{r["transport"]}" {r["req_per_s"]:.3f} {r["bytes_per_msg"]:.1f} '
                        f'{max(r["p50_ms"], 0.01):.3f} {max(r["p99_ms"], 0.01):.3f} '
                        f'{r["server_cpu_us_per_msg"]:.2f}\n')
        script = f"""
set terminal pngcairo size 1200,420 font ",10"
set output "{out_png}"
set multiplot layout 1,3 title "The same chat ({runs[0]['clients']} clients, {runs[0]['rate']} msg/s) over each transport"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
unset key
set xtics rotate by -20
set yrange [0:*]
set title "HTTP requests per second"
plot "{data}" using 1:3:xtic(2) with boxes lc rgb "#4c72b0"
set title "bytes on the wire per delivered message"
plot "{data}" using 1:4:xtic(2) with boxes lc rgb "#dd8452"
set title "delivery latency, ms (log): p50 bars, p99 points"
set logscale y
set yrange [*:*]
plot "{data}" using 1:5:xtic(2) with boxes lc rgb "#55a868", "" using 1:6 with points pt 7 ps 1.5 lc rgb "#c44e52"
unset multiplot
"""
        try:
            subprocess.run(["gnuplot"], input=script, text=True, check=True)
            return True
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"transports_report: no chart ({e})", file=sys.stderr)
            return False


def by_name(runs, prefix):
    for r in runs:
        if r["transport"].startswith(prefix):
            return r
    return None


def ratio(a, b):
    return a / b if b else float("inf")


def claims(runs, held):
    ws = by_name(runs, "WebSocket")
    lp = by_name(runs, "long polling")
    p1 = by_name(runs, "poll 1000")
    p250 = by_name(runs, "poll 250")
    out = []
    if p1 and p250 and ws:
        per_msg_1 = p1["requests"] / max(p1["sent"], 1)
        per_msg_250 = p250["requests"] / max(p250["sent"], 1)
        out.append(
            f"- **\"Polling wastes requests\" — held, and it grows with the rate of polling, not of messages.** "
            f"Polling every 1 s made {p1['req_per_s']:.0f} requests/s and every 250 ms "
            f"{p250['req_per_s']:.0f} requests/s for the same {p1['rate']} messages/s "
            f"({per_msg_1:.1f} and {per_msg_250:.1f} requests per message sent); "
            f"{p1['empty']} and {p250['empty']} of those came back empty. WebSocket made none after its "
            f"{p1['clients']} upgrades. On the wire a delivered message cost {p1['bytes_per_msg']:.0f} B "
            f"(1 s) and {p250['bytes_per_msg']:.0f} B (250 ms) against {ws['bytes_per_msg']:.0f} B over "
            f"WebSocket: {ratio(p1['bytes_per_msg'], ws['bytes_per_msg']):.1f}x and "
            f"{ratio(p250['bytes_per_msg'], ws['bytes_per_msg']):.1f}x. Where it held less than the talk "
            f"suggests: with {p1['clients']} clients each poll carries several messages, so the header "
            f"overhead is shared; with fewer messages the ratio would be worse, with more it would shrink.")
        out.append(
            f"- **\"Polling latency depends on the interval\" — held, almost exactly.** p50 was "
            f"{p1['p50_ms']:.0f} ms at 1 s and {p250['p50_ms']:.0f} ms at 250 ms (half the interval is "
            f"500 and 125 ms: a message waits on average half an interval for the next poll); p99 "
            f"{p1['p99_ms']:.0f} and {p250['p99_ms']:.0f} ms, close to the whole interval.")
    if lp and ws:
        out.append(
            f"- **\"Long polling is near real time but pays per message\" — held.** p50 "
            f"{lp['p50_ms']:.2f} ms against WebSocket's {ws['p50_ms']:.2f} ms (p99 {lp['p99_ms']:.1f} "
            f"vs {ws['p99_ms']:.1f} ms): the wake-up is immediate, so latency is close; but every delivery "
            f"ends a response and costs a new request: {lp['req_per_s']:.0f} requests/s, "
            f"{lp['bytes_per_msg']:.0f} B per delivered message, "
            f"{ratio(lp['bytes_per_msg'], ws['bytes_per_msg']):.1f}x WebSocket's, and "
            f"{lp['server_cpu_us_per_msg']:.1f} µs of server CPU per delivered message against "
            f"{ws['server_cpu_us_per_msg']:.1f} µs "
            f"({ratio(lp['server_cpu_us_per_msg'], ws['server_cpu_us_per_msg']):.1f}x).")
    if held:
        out.append(
            f"- **\"Long polling holds server state\" — held, and measured.** {held['held']:,} sessions each "
            f"holding a long poll took {held['bytes_per_held']:.0f} B of server RSS each "
            f"(from {held['rss_before_kb']:,} KiB to {held['rss_after_kb']:,} KiB), the session, its chat "
            f"client, the TCP connection and the held request together — within the 2 KiB target "
            f"{'(met)' if held['bytes_per_held'] <= 2048 else '(MISSED)'}. The request's parse buffers are "
            f"freed while it is held; kernel socket buffers are not in this figure. \"Needs reconnect and "
            f"timeout handling\": the server answers [] after the timeout, frees a held request the moment "
            f"its client goes, and keeps events until acknowledged (tests/integration/http_session.test.mjs).")
    if ws and p1:
        out.append(
            f"- **\"WebSocket is persistent, full-duplex and low-latency\" — held.** One connection per "
            f"client, no request after the upgrade, {ws['bytes_per_msg']:.0f} B per delivered message "
            f"(the JSON plus a 2-byte frame header, and the sender's 6-byte masked header and its ack), "
            f"p50 {ws['p50_ms']:.2f} ms, p99 {ws['p99_ms']:.2f} ms, and the least server CPU per delivered "
            f"message of the four ({ws['server_cpu_us_per_msg']:.1f} µs).")
    return out


def main():
    results, docs, server_cmd, bench_cmd, held_cmd, machine = sys.argv[1:7]
    runs, held = load(results)
    if not runs:
        sys.exit("transports_report: no results")
    png = os.path.join(docs, "transports.png")
    have_chart = chart(runs, png)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    r0 = runs[0]
    lines = [
        "# The transports, measured side by side",
        "",
        "The talk this project grew from walks from HTTP to polling, long polling and",
        "WebSocket. wschat serves all of them on the same rooms (docs/PROTOCOL.md, \"HTTP",
        "sessions\"), so the talk's claims can be measured. One chat workload —",
        f"{r0['clients']} clients in one room, {r0['rate']} messages/s in total (each sent by the next",
        f"client in turn), {r0['duration_s']:.0f} s — over each transport, with the same server and the",
        "same client tool. Every delivery is verified: each client must receive each",
        "sender's messages exactly once and in order (a loss, duplicate or reordering fails",
        "the run).",
        "",
        f"Measured {when} on {machine}; a release build.",
        "",
        "| transport | HTTP req/s | empty responses | bytes on the wire per delivered message | latency p50 | latency p99 | server CPU per delivered message | deliveries verified |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['transport']} | {r['req_per_s']:.1f} | {r['empty']} | {r['bytes_per_msg']:.0f} B | "
            f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['server_cpu_us_per_msg']:.1f} µs | "
            f"{'yes' if r['verified'] else 'NO'}: {r['delivered']:,} of {r['sent'] * r['clients']:,} "
            f"(lost {r['lost']}, dup {r['dup']}, reordered {r['reorder']}) |")
    lines += [""]
    if have_chart:
        lines += ["![requests/s, bytes per message and latency per transport](transports.png)", ""]
    if held:
        lines += [
            "**Memory of held long polls.** "
            f"{held['held']:,} HTTP sessions, each holding a long poll: server RSS "
            f"{held['rss_before_kb']:,} KiB before, {held['rss_after_kb']:,} KiB after: "
            f"**{held['bytes_per_held']:.0f} B per held long poll** (session, chat client, connection and "
            "held request together; target ≤ 2 KiB).",
            "",
        ]
    lines += [
        "What the columns mean: *HTTP req/s* counts requests completed while sending (session",
        "set-up excluded); *bytes on the wire* is every byte the clients wrote and read on their",
        "sockets during the run — request lines, headers, bodies, frames — divided by messages",
        "delivered; *latency* runs from the moment a client sends to the moment a receiver has",
        "parsed the message (send time travels in the text); *server CPU* is the server's user +",
        "system time over the run (/proc), divided by messages delivered.",
        "",
        "## Where the talk's claims held",
        "",
    ]
    lines += claims(runs, held)
    lines += [
        "",
        "## How to run it",
        "",
        "```sh",
        "make bench-transports      # builds, runs both parts, writes this file and docs/transports.png",
        "```",
        "",
        "which runs (bench/transports.sh; the server pinned to CPU 0, the client to CPU 1):",
        "",
        "```sh",
        server_cmd,
        bench_cmd,
        held_cmd,
        "```",
        "",
        "Compare ratios within one run; absolute numbers move with the machine.",
        "",
    ]
    with open(os.path.join(docs, "TRANSPORTS.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
