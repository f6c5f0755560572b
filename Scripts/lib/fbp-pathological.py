#!/usr/bin/env python3
"""Pathological .fbp inputs for Scripts/bench-fbp (issue 10, item 12): many warnings on one long line, and an
error at the end of a long line. Times `msgflo-graph --check` (whole process) on each, and the reference
parser under node when a checkout is given, best of RUNS runs, each with a timeout.

usage: fbp-pathological.py WORKDIR MSGFLO_GRAPH [REFERENCE_CHECKOUT]
"""
import os
import subprocess
import sys
import time

RUNS = 3
TIMEOUT = 60.0


def inputs():
    yield ("metadata k=v x 60,000 (1 line)", "a(A:" + "k=v," * 60_000 + "x=1)\n")
    yield ("metadata k=v x 2,500,000 (10 MB, 1 line)", "a(A:" + "k=v," * 2_500_000 + "x=1)\n")
    yield ("'a(A) ' + 'a ' x 1,000,000 (1 line)", "a(A) " + "a " * 1_000_000 + "\n")
    yield ("JSON key x 60,000 (1 line)", "{" + ",".join(['"k":1'] * 60_000) + "} -> IN a(A)\n")
    yield ("JSON lone surrogate x 60,000", '"' + "\\ud800" * 60_000 + '" -> IN a(A)\n')
    yield ("error at the end of a 10 MB line", "a(A) -> IN b(B) " + "x " * 5_000_000 + "-> ,\n")


def best(cmd):
    """Best wall time in seconds (None after a timeout), exit status and bytes on stderr of the last run."""
    best_t, status, err = None, None, 0
    for _ in range(RUNS):
        t = time.perf_counter()
        try:
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, "timeout", 0
        d = time.perf_counter() - t
        status, err = p.returncode, len(p.stderr)
        best_t = d if best_t is None or d < best_t else best_t
    return best_t, status, err


def fmt(t):
    return "> %.0f s" % TIMEOUT if t is None else "%.1f ms" % (t * 1000)


def main():
    work, ours = sys.argv[1], sys.argv[2]
    ref = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    print("pathological inputs (msgflo-graph --check, whole process, best of %d; timeout %.0f s):" % (RUNS, TIMEOUT))
    print("  %-42s %9s %11s %6s %9s %11s %8s" % ("input", "size", "ours", "exit", "stderr", "reference", "ratio"))
    for i, (label, text) in enumerate(inputs()):
        path = os.path.join(work, "pathological-%d.fbp" % i)
        with open(path, "w") as f:
            f.write(text)
        t, status, err = best([ours, "--check", path])
        rt = None
        rtext = "not run"
        ratio = ""
        if ref:
            rt, rstatus, _ = best(["node", os.path.join(ref, "bin/fbp"), path])
            rtext = fmt(rt)
            if rt is not None and t is not None:
                ratio = "%.1fx" % (rt / t)
        print("  %-42s %7.1f MB %11s %6s %7d B %11s %8s" % (label, len(text) / 1e6, fmt(t), status, err, rtext, ratio))
    if not ref:
        print("  (reference not run: set FBP_REFERENCE to a flowbased/fbp checkout)")


if __name__ == "__main__":
    main()
