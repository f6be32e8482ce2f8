#!/usr/bin/env python3
"""Where a live process's malloc heap keeps resident pages it does not use.

    python3 bench/tools/heapwalk.py PID [CONNECTIONS]

Reads /proc/PID/pagemap (which pages are resident) and then the [heap]
mapping through /proc/PID/mem (same user, ptrace allowed), and walks
glibc's main-arena chunks from the heap's start: a chunk is in use when
the next one's PREV_INUSE bit is set. Chunks glibc caches per thread
(tcache) look in use; they are told apart by the tcache key glibc writes
in the second word of every cached chunk (the most common non-zero word
there, if it is not pointer-shaped). Prints the heap's size and resident pages, the bytes in use, the
free chunks and the free bytes that sit on resident pages (per connection
when CONNECTIONS is given: docs/PERFORMANCE.md, "The bytes"), and which
in-use chunk sizes border the free chunks holding those bytes.

Read pagemap first: reading a page through /proc/PID/mem faults it in.
Run it while the process is idle (the heap must not move under the walk).
"""
import collections
import struct
import sys

PAGE = 4096


def main():
    pid = int(sys.argv[1])
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    lo = hi = None
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if line.rstrip().endswith("[heap]"):
                a, b = line.split()[0].split("-")
                lo, hi = int(a, 16), int(b, 16)
    if lo is None:
        sys.exit("no [heap] mapping")
    npages = (hi - lo) // PAGE
    with open(f"/proc/{pid}/pagemap", "rb") as pm:
        pm.seek(lo // PAGE * 8)
        raw = pm.read(npages * 8)
    present = [(struct.unpack_from("<Q", raw, i * 8)[0] >> 63) & 1 for i in range(npages)]
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(lo)
        data = mem.read(hi - lo)

    chunks = []   # [offset, size, state]
    off = 0
    while off + 16 <= len(data):
        size = struct.unpack_from("<Q", data, off + 8)[0] & ~7
        if size == 0 or off + size > len(data):
            chunks.append([off, len(data) - off, "top"])
            break
        chunks.append([off, size, "use"])
        off += size
    for i in range(len(chunks) - 1):
        nxt = chunks[i + 1][0]
        if not struct.unpack_from("<Q", data, nxt + 8)[0] & 1:
            chunks[i][2] = "free"
    keys = collections.Counter(data[o + 24:o + 32] for o, s, st in chunks
                               if st == "use" and s >= 32 and data[o + 24:o + 32] != bytes(8))
    if keys:
        key, n = keys.most_common(1)[0]
        # glibc's key is random: a word whose top 16 bits are zero is a
        # pointer many objects share, not the key (1 in 65,536 keys is lost).
        if n > 1 and struct.unpack("<Q", key)[0] >> 48:
            for c in chunks:
                if c[2] == "use" and c[1] >= 32 and data[c[0] + 24:c[0] + 32] == key:
                    c[2] = "tcache"

    page_use = [0] * npages
    page_free = [0] * npages
    for o, s, st in chunks:
        p = o // PAGE
        while p * PAGE < o + s and p < npages:
            part = min(o + s, (p + 1) * PAGE) - max(o, p * PAGE)
            if st in ("use", "tcache"):
                page_use[p] += part
            else:
                page_free[p] += part
            p += 1

    per = (lambda b: f" ({b / conns:.1f} B a connection)") if conns else (lambda b: "")
    resident = sum(present)
    kinds = collections.Counter(st for _, _, st in chunks)
    in_use = sum(s for _, s, st in chunks if st == "use")
    cached = sum(s for _, s, st in chunks if st == "tcache")
    free_res = sum(page_free[p] for p in range(npages) if present[p])
    print(f"heap {hi - lo} B, {npages} pages, {resident} resident ({resident * PAGE} B)")
    print(f"chunks: {kinds['use']} in use ({in_use} B), {kinds['tcache']} in the tcache ({cached} B), "
          f"{kinds['free']} free")
    print(f"free bytes on resident pages: {free_res}{per(free_res)}")
    border = collections.Counter()
    for i, (o, s, st) in enumerate(chunks):
        if st != "free":
            continue
        res = sum(min(o + s, (p + 1) * PAGE) - max(o, p * PAGE)
                  for p in range(o // PAGE, (o + s - 1) // PAGE + 1) if p < npages and present[p])
        for j in (i - 1, i + 1):
            if 0 <= j < len(chunks):
                border[(chunks[j][1], chunks[j][2])] += res / 2
    print("free resident bytes by the size of the chunk next to them (top 15):")
    for (size, st), b in border.most_common(15):
        print(f"  {size:8d} B {st:6s} {b:10.0f}")


if __name__ == "__main__":
    main()
