#!/usr/bin/env python3
"""Folds `perf script` output into stacks and draws a flame graph as SVG.

    perf record -F 999 -g -p PID -- sleep 10
    perf script | bench/flamegraph.py --title "fan-out 1x100" > docs/flame-fanout.svg

Standard library only. Each sample's stack becomes one root-to-leaf path;
boxes are as wide as the share of samples whose stack passes through them.
"""
import argparse
import html
import re
import sys
from collections import defaultdict

FRAME_RE = re.compile(r"^\s*[0-9a-f]+\s+(.+?)\s+\((.*)\)\s*$")


def fold(lines, keep_comm=None):
    """Yields (stack tuple root->leaf) per sample."""
    stack, comm = [], None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack and (keep_comm is None or comm == keep_comm):
                yield tuple(reversed(stack))
            stack, comm = [], None
            continue
        if not line.startswith((" ", "\t")):
            comm = line.split()[0]
            continue
        m = FRAME_RE.match(line)
        if not m:
            continue
        sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
        if sym == "[unknown]":
            sym = "[" + m.group(2).rsplit("/", 1)[-1] + "]"
        if not (stack and sym == stack[-1] and sym.startswith("[")):
            stack.append(sym)  # runs of one unresolved frame fold into one
    if stack and (keep_comm is None or comm == keep_comm):
        yield tuple(reversed(stack))


def build_tree(stacks):
    def node():
        return {"n": 0, "kids": {}}
    root = node()
    for st in stacks:
        root["n"] += 1
        cur = root
        for f in st:
            cur = cur["kids"].setdefault(f, node())
            cur["n"] += 1
    return root


def color(name):
    h = 0
    for ch in name:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    r = 205 + h % 50
    g = 80 + (h >> 8) % 120
    b = 40 + (h >> 16) % 40
    return f"rgb({r},{g},{b})"


def render(root, title, width=1200, row=17):
    depth = [0]
    boxes = []
    total = max(root["n"], 1)

    def walk(n, name, x, level):
        depth[0] = max(depth[0], level)
        w = n["n"] / total * (width - 20)
        if w >= 0.3:
            boxes.append((x, level, w, name, n["n"]))
        cx = x
        for kname, kid in sorted(n["kids"].items()):
            walk(kid, kname, cx, level + 1)
            cx += kid["n"] / total * (width - 20)

    walk(root, "all", 10, 0)
    height = (depth[0] + 1) * row + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           f'<rect width="100%" height="100%" fill="#fdfdf6"/>',
           f'<text x="{width/2}" y="20" text-anchor="middle" font-size="15">{html.escape(title)}</text>']
    for x, level, w, name, n in boxes:
        y = height - 20 - (level + 1) * row
        pct = 100.0 * n / total
        label = html.escape(name)
        out.append(f'<g><title>{label} ({n} samples, {pct:.1f}%)</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row-1}" fill="{color(name)}" rx="2"/>')
        chars = int(w / 6.6)
        if chars >= 3:
            text = name if len(name) <= chars else name[:chars - 2] + ".."
            out.append(f'<text x="{x+3:.1f}" y="{y+row-5}">{html.escape(text)}</text>')
        out.append('</g>')
    out.append(f'<text x="10" y="{height-5}">{total} samples</text></svg>')
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--comm", help="only samples of this command name")
    ap.add_argument("--folded", help="also write folded stacks to this file")
    ap.add_argument("--top", type=int, default=0, help="print the top N leaf functions to stderr")
    args = ap.parse_args()
    stacks = list(fold(sys.stdin, args.comm))
    if args.folded:
        counts = defaultdict(int)
        for st in stacks:
            counts[";".join(st)] += 1
        with open(args.folded, "w") as f:
            for k, v in sorted(counts.items()):
                f.write(f"{k} {v}\n")
    if args.top:
        leaf = defaultdict(int)
        for st in stacks:
            leaf[st[-1]] += 1
        for name, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"{100.0*n/max(len(stacks),1):5.1f}%  {name}", file=sys.stderr)
    sys.stdout.write(render(build_tree(stacks), args.title))


if __name__ == "__main__":
    main()
