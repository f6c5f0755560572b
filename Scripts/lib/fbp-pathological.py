#!/usr/bin/env python3
"""Pathological .fbp inputs for Scripts/bench-fbp (issue 10, item 12): many warnings on one long line, and an
error at the end of a long line. Times `msgflo-graph --check` (whole process) on each, and the reference
parser under node when a checkout is given, best of RUNS runs, each with a timeout.

usage: fbp-pathological.py WORKDIR MSGFLO_GRAPH [REFERENCE_CHECKOUT]
"""
import os
import resource
import subprocess
import sys
import time

RUNS = 3
TIMEOUT = 300.0  # the reference takes 10 s of CPU on some; a loaded machine stretches that


def inputs():
    yield ("metadata k=v x 60,000 (1 line)", "a(A:" + "k=v," * 60_000 + "x=1)\n")
    yield ("metadata k=v x 2,500,000 (10 MB, 1 line)", "a(A:" + "k=v," * 2_500_000 + "x=1)\n")
    yield ("'a(A) ' + 'a ' x 1,000,000 (1 line)", "a(A) " + "a " * 1_000_000 + "\n")
    yield ("JSON key x 60,000 (1 line)", "{" + ",".join(['"k":1'] * 60_000) + "} -> IN a(A)\n")
    yield ("JSON lone surrogate x 60,000", '"' + "\\ud800" * 60_000 + '" -> IN a(A)\n')
    yield ("error at the end of a 10 MB line", "a(A) -> IN b(B) " + "x " * 5_000_000 + "-> ,\n")


def best(cmd):
    """Best wall time and best CPU time (user + system) in seconds, None after a timeout; the exit status and
    the bytes on stderr of the last run. CPU time is what to compare on a loaded machine."""
    best_t, best_c, status, err = None, None, None, 0
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        try:
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, None, "timeout", 0
        d = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        c = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        status, err = p.returncode, len(p.stderr)
        best_t = d if best_t is None or d < best_t else best_t
        best_c = c if best_c is None or c < best_c else best_c
        if d > 10:
            break  # one slow run says enough
    return best_t, best_c, status, err


def fmt(t):
    return "> %.0f s" % TIMEOUT if t is None else "%.0f ms" % (t * 1000)


def main():
    work, ours = sys.argv[1], sys.argv[2]
    ref = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    print("pathological inputs (msgflo-graph --check vs node bin/fbp, whole processes, best of %d, timeout %.0f s;"
          % (RUNS, TIMEOUT))
    print("wall and CPU (user + sys) time; the ratio is the reference's CPU time over ours; load %.1f):"
          % os.getloadavg()[0])
    print("  %-40s %8s %9s %9s %5s %8s %9s %9s %7s" % ("input", "size", "ours", "ours CPU", "exit", "stderr",
                                                      "ref", "ref CPU", "ratio"))
    for i, (label, text) in enumerate(inputs()):
        path = os.path.join(work, "pathological-%d.fbp" % i)
        with open(path, "w") as f:
            f.write(text)
        t, c, status, err = best([ours, "--check", path])
        rt = rc = None
        ratio = ""
        if ref:
            rt, rc, _, _ = best(["node", os.path.join(ref, "bin/fbp"), path])
            if rc is not None and c:
                ratio = "%.2fx" % (rc / c)
        print("  %-40s %5.1f MB %9s %9s %5s %6d B %9s %9s %7s" % (label, len(text) / 1e6, fmt(t), fmt(c), status, err,
                                                             fmt(rt) if ref else "-", fmt(rc) if ref else "-", ratio))
    if not ref:
        print("  (reference not run: set FBP_REFERENCE to a flowbased/fbp checkout)")


if __name__ == "__main__":
    main()
