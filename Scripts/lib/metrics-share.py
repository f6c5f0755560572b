#!/usr/bin/env python3
"""metrics-share.py PERFDATA: share of a relay participant's perf samples spent in the metrics code of the message path
(Scripts/bench observe profile; record with --call-graph dwarf, so that clock reads unwind through glibc).
A sample counts when a frame of its stack is metrics code (swift-prometheus, swift-metrics' CoreMetrics, the SDK's
InportMetrics/OutportCounter, MsgFloObserve's atomics) or a clock read / Duration arithmetic called straight from the
participant SDK (MsgFloParticipant: the handler timing)."""
import re, subprocess, sys, collections
data = sys.argv[1]
out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"], capture_output=True, text=True).stdout
metrics = re.compile(r"^\$s(10Prometheus|11CoreMetrics|13MsgFloObserve|17MsgFloParticipant13InportMetricsO|17MsgFloParticipant14OutportCounterO)|handle.*\$defer")
clockish = re.compile(r"ContinuousClock|clock_gettime|swift_get_time|8DurationV|Duration|vdso|s4Int128|u128|i128|__divti3|__udivti3|\$sSu|\$sSi|\$ss6Int128")
samples = 0; hit = 0; parts = collections.Counter()
def flush(stack):
    global samples, hit
    if not stack: return
    samples += 1
    why = None
    for i, f in enumerate(stack):
        if metrics.search(f):
            why = f[:80]; break
    if why is None:
        # clock / Duration frames at the leaf, called from the participant SDK
        j = 0
        while j < len(stack) and (clockish.search(stack[j]) or stack[j].startswith("[unknown]")): j += 1
        if j > 0 and j < len(stack) and "17MsgFloParticipant" in stack[j]:
            why = "clock/Duration from " + stack[j][:70]
    if why:
        hit += 1; parts[why] += 1
stack = []
for line in out.splitlines():
    if not line.strip():
        flush(stack); stack = []; continue
    if line[0] not in " \t":
        flush(stack); stack = []; continue
    parts_ = line.strip().split(None, 1)
    stack.append(parts_[1] if len(parts_) > 1 else "?")
flush(stack)
print(f"{data}: {hit} of {samples} samples in metrics code = {100.0*hit/max(samples,1):.2f}%")
for k, v in parts.most_common(12): print(f"  {100.0*v/samples:5.2f}%  {k}")
