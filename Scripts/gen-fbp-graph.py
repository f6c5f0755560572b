#!/usr/bin/env python3
"""Generate a large, valid .fbp graph for benchmarks: named nodes with components, edges with
ports (some indexed), IIPs (quoted and JSON), comments, metadata, exported ports.
Usage: gen-fbp-graph.py NODES EDGES [SEED] > graph.fbp"""
import random
import sys

nodes = int(sys.argv[1])
edges = int(sys.argv[2])
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
comps = ["core/Repeat", "core/Split", "strings/CompileString", "http/Server", "objects/SetProperty",
         "flow/Gate", "math/Add", "dom/GetElement", "packets/DoNotDisconnect", "core/Output"]
ports_in = ["IN", "DATA", "OPTIONS", "TEMPLATE", "KEY", "VALUE"]
ports_out = ["OUT", "ERROR", "DATA", "RESULT"]
out = ["# @runtime noflo-nodejs", "# @name BenchGraph", "INPORT=node0.IN:INPUT", "OUTPORT=node1.OUT:OUTPUT", ""]
declared = set()


def node(i):
    name = "node%d" % i
    if name in declared:
        return name
    declared.add(name)
    c = comps[i % len(comps)]
    if i % 17 == 0:
        return "%s(%s:x=%d,y=%d)" % (name, c, rng.randrange(1000), rng.randrange(1000))
    return "%s(%s)" % (name, c)


for i in range(nodes):  # a spanning chain of statements so every node gets declared
    if len(out) % 50 == 0:
        out.append("# section %d" % i)
    if i + 1 < nodes and i < edges:
        src_port = rng.choice(ports_out)
        if i % 11 == 0:
            src_port += "[%d]" % rng.randrange(4)
        out.append("%s %s -> %s %s" % (node(i), src_port, rng.choice(ports_in), node(i + 1)))
for k in range(max(0, edges - nodes)):
    a, b = rng.randrange(nodes), rng.randrange(nodes)
    if k % 5 == 0:
        out.append("'value %d' -> %s %s" % (k, rng.choice(ports_in), node(b)))
    elif k % 13 == 0:
        out.append('{"k": %d, "list": [1, 2, 3]} -> OPTIONS %s' % (k, node(b)))
    else:
        out.append("%s %s -> %s %s" % (node(a), rng.choice(ports_out), rng.choice(ports_in), node(b)))
sys.stdout.write("\n".join(out) + "\n")
