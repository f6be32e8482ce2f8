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


def claims(runs, low, held):
    ws = by_name(runs, "WebSocket")
    lp = by_name(runs, "long polling")
    p1 = by_name(runs, "poll 1000")
    p250 = by_name(runs, "poll 250")
    out = []
    if p1 and p250 and ws and lp:
        rpd = {r["transport"]: r["requests"] / max(r["delivered"], 1) for r in runs}
        text = (
            f"- **\"Polling wastes requests\".** At {p1['rate']} messages/s in a room of {p1['clients']}, "
            f"polling every 1 s made {p1['req_per_s']:.0f} requests/s and every 250 ms "
            f"{p250['req_per_s']:.0f} requests/s, with {p1['empty']} and {p250['empty']} empty answers: "
            f"at this rate almost every poll finds something, so the waste is less in empty answers than in "
            f"headers and in latency. ")
        lw = {r["transport"]: r for r in low}
        l250 = by_name(low, "poll 250")
        l1 = by_name(low, "poll 1000")
        if l250 and l1:
            frac250 = l250["empty"] / max(l250["requests"], 1)
            frac1 = l1["empty"] / max(l1["requests"], 1)
            verdict = "held" if frac250 > 0.5 else "held only partly"
            text += (
                f"At {l250['rate']} message/s the claim {verdict}: {100 * frac250:.0f}% of the 250 ms polls "
                f"and {100 * frac1:.0f}% of the 1 s polls came back empty "
                f"({l250['req_per_s']:.0f} and {l1['req_per_s']:.0f} requests/s to deliver "
                f"{l250['rate']} message/s), and a delivered message cost {l250['bytes_per_msg']:.0f} B "
                f"and {l1['bytes_per_msg']:.0f} B on the wire against WebSocket's "
                f"{lw.get('WebSocket', ws)['bytes_per_msg']:.0f} B.")
        out.append(text)
        out.append(
            f"- **\"Polling latency depends on the interval\" — held, almost exactly.** p50 was "
            f"{p1['p50_ms']:.0f} ms at 1 s and {p250['p50_ms']:.0f} ms at 250 ms (half the interval is "
            f"500 and 125 ms: a message waits on average half an interval for the next poll); p99 "
            f"{p1['p99_ms']:.0f} and {p250['p99_ms']:.0f} ms, up to the whole interval.")
        out.append(
            f"- **\"Long polling is near real time\" — held; \"but it costs a request per message\" — held, "
            f"and at a busy rate it costs more than polling.** p50 {lp['p50_ms']:.2f} ms against "
            f"WebSocket's {ws['p50_ms']:.2f} ms: the held request is answered by the room's fan-out at once. "
            f"But each delivery ends a response, so it made {lp['req_per_s']:.0f} requests/s "
            f"({rpd[lp['transport']]:.2f} per delivered message, against {rpd[p1['transport']]:.2f} for "
            f"polling every 1 s, which batches), {lp['bytes_per_msg']:.0f} B per delivered message "
            f"({ratio(lp['bytes_per_msg'], ws['bytes_per_msg']):.1f}x WebSocket's) and "
            f"{lp['server_cpu_us_per_msg']:.1f} µs of server CPU per delivered message "
            f"({ratio(lp['server_cpu_us_per_msg'], ws['server_cpu_us_per_msg']):.1f}x WebSocket's).")
        cpu_order = sorted(runs, key=lambda r: r["server_cpu_us_per_msg"])
        cheapest = cpu_order[0]
        cpu_note = ("and the least server CPU per delivered message of the four"
                    if cheapest is ws else
                    f"but not the least server CPU per delivered message: {cheapest['transport']} "
                    f"({cheapest['server_cpu_us_per_msg']:.1f} µs against {ws['server_cpu_us_per_msg']:.1f} µs) "
                    f"hands each client several messages per response, where WebSocket writes each "
                    f"message to each socket as it is committed — the price of its latency")
        out.append(
            f"- **\"WebSocket is persistent, full-duplex and low-latency\" — held.** One connection per "
            f"client, no request after the upgrade, the fewest bytes per delivered message "
            f"({ws['bytes_per_msg']:.0f} B: the JSON plus a 2-byte frame header, the sender's masked "
            f"frame and its ack), p50 {ws['p50_ms']:.2f} ms, p99 {ws['p99_ms']:.2f} ms; {cpu_note}.")
    if held:
        out.append(
            f"- **\"Long polling holds server state\" — held, and measured.** {held['held']:,} sessions each "
            f"holding a long poll took {held['bytes_per_held']:.0f} B of server RSS each "
            f"(from {held['rss_before_kb']:,} KiB to {held['rss_after_kb']:,} KiB): the session, its chat "
            f"client, the TCP connection and the held request together — "
            f"{'within' if held['bytes_per_held'] <= 2048 else 'OVER'} the 2 KiB target. The request's parse "
            f"buffers are freed while it is held; kernel socket buffers are not in this figure. \"It needs "
            f"reconnect and timeout handling\": the server answers [] after the timeout, frees a held "
            f"request the moment its client goes, and keeps events until acknowledged "
            f"(tests/integration/http_session.test.mjs).")
    return out


def table(runs):
    lines = [
        "| transport | HTTP req/s | empty responses | bytes on the wire per delivered message | latency p50 | latency p99 | server CPU per delivered message | deliveries verified |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['transport']} | {r['req_per_s']:.1f} | {r['empty']} | {r['bytes_per_msg']:.0f} B | "
            f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['server_cpu_us_per_msg']:.1f} µs | "
            f"{'yes' if r['verified'] else 'NO'}: {r['delivered']:,} of {r['sent'] * r['clients']:,} "
            f"(lost {r['lost']}, dup {r['dup']}, reordered {r['reorder']}) |")
    return lines


def main():
    results, docs, server_cmd, bench_cmd, held_cmd, machine = sys.argv[1:7]
    allruns, held = load(results)
    if not allruns:
        sys.exit("transports_report: no results")
    runs = [r for r in allruns if r["rate"] == allruns[0]["rate"]]
    low = [r for r in allruns if r["rate"] != allruns[0]["rate"]]
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
    ]
    lines += table(runs)
    if low:
        lines += ["", f"The same, quiet: {low[0]['rate']} message/s in total ({low[0]['duration_s']:.0f} s):", ""]
        lines += table(low)
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
    lines += claims(runs, low, held)
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
        "Compare ratios within one run; absolute numbers move with the machine. The p99 figures are the",
        "noisiest: a few slow loop iterations on a busy machine (this one was shared) decide them.",
        "",
    ]
    with open(os.path.join(docs, "TRANSPORTS.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
