// msgflo-latency BROKER OUTQUEUE INQUEUE [N] [RATE]: a latency probe written with the SDK. It sends N messages
// (default 3000) at RATE per second (default 500) on OUTQUEUE, takes them back on INQUEUE after whatever chain of
// participants lies between, and prints the round-trip latency percentiles (the first 5% are warm-up, not counted).
import Logging
import MsgFlo
import MsgFloParticipant
import MsgFloTransports
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var args = Array(CommandLine.arguments.dropFirst())

// msgflo-latency --raw-relay BROKER IN OUT: the transport alone, no SDK (consume IN, send each message to OUT,
// ack), to tell the SDK's overhead from the transport's in the relay benchmark.
if args.first == "--raw-relay", args.count == 4, let url = try? BrokerURL(parsing: args[1]) {
    var logger = Logger(label: "raw-relay")
    logger.logLevel = .warning
    do {
        let t = try Transports.make(url, logger: logger)
        try await t.connect()
        try await t.declareInport(args[2])
        try await t.declareOutport(args[3])
        let sub = try await t.consume(args[2], options: ConsumeOptions(prefetch: 100))
        let out = args[3]
        // Off the main actor (top-level code is main-actor isolated: a hop per message otherwise).
        try await Task.detached {
            for await d in sub {
                try await t.send(toOutport: out, d.message)
                d.ack()
            }
        }.value
    } catch {
        print("raw-relay: \(error)")
        exit(1)
    }
    exit(0)
}
// msgflo-latency --host BROKER FIRST LAST: Repeat participants a<i> and b<i> for i in FIRST...LAST, all in this
// process on one connection (the SDK runs several participants per transport), for the observing benchmark's
// 1,000-node graph: every node a real participant with its own queues, so that the daemon can wire every edge.
if args.first == "--host", args.count == 4, let url = try? BrokerURL(parsing: args[1]),
   let first = Int(args[2]), let last = Int(args[3]), first <= last {
    var logger = Logger(label: "host")
    logger.logLevel = .warning
    let repeatNode = Participant(component: "Repeat", inports: ["in"], outports: ["out"]) { _, msg, ctx in
        try await ctx.send("out", msg)
    }
    do {
        let t = try Transports.make(url, logger: logger)
        try await t.connect()
        var running: [RunningParticipant] = []
        for i in first...last {
            for role in ["a\(i)", "b\(i)"] {
                running.append(try await repeatNode.start(role: role, on: t, options: ParticipantOptions(prefetch: 1), logger: logger))
            }
        }
        print("hosting \(running.count) participants")
        // Until SIGTERM (the benchmark kills it): the participants keep announcing in their own tasks.
        while true { try await Task.sleep(for: .seconds(3600)) }
    } catch {
        print("host: \(error)")
        exit(1)
    }
}
guard args.count >= 3, let url = try? BrokerURL(parsing: args[0]) else {
    print("usage: msgflo-latency BROKER OUTQUEUE INQUEUE [N] [RATE]")
    exit(2)
}
let n = args.count > 3 ? Int(args[3]) ?? 3000 : 3000
let rate = args.count > 4 ? Double(args[4]) ?? 500 : 500

final class Probe: Sendable {
    let sent = Mutex<[Int: ContinuousClock.Instant]>([:])
    let latencies = Mutex<[Duration]>([])
}
let probe = Probe()
let clock = ContinuousClock()

let participant = Participant(component: "LatencyProbe", inports: ["in"], outports: ["out"]) { _, msg, _ in
    let now = clock.now
    guard let seq = msg.json?["seq"]?.intValue, let t0 = probe.sent.withLock({ $0.removeValue(forKey: seq) }) else { return }
    probe.latencies.withLock { $0.append(now - t0) }
}

var logger = Logger(label: "msgflo-latency")
logger.logLevel = .warning
do {
    let transport = try Transports.make(url, logger: logger)
    try await transport.connect()
    let running = try await participant.start(role: "latency-probe", on: transport,
                                              options: ParticipantOptions(prefetch: 50, queues: ["out": args[1], "in": args[2]]),
                                              logger: logger)
    try await Task.sleep(for: .milliseconds(300))
    let interval = Duration.seconds(1 / rate)
    var next = clock.now
    for seq in 0..<n {
        next += interval
        try await clock.sleep(until: next)
        probe.sent.withLock { $0[seq] = clock.now }
        try await running.context.send("out", ["seq": .int(seq), "pad": .string(String(repeating: "x", count: 64))])
    }
    let deadline = clock.now + .seconds(10)
    while probe.latencies.withLock({ $0.count }) < n && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    await running.stop()
    await transport.close()
} catch {
    print("msgflo-latency: \(error)")
    exit(1)
}
let all = probe.latencies.withLock { $0 }
let counted = all.dropFirst(n / 20).sorted()
func ms(_ d: Duration) -> String {
    let (s, a) = d.components
    return String(format2(Double(s) * 1000 + Double(a) / 1e15))
}
func format2(_ v: Double) -> String { let r = (v * 100).rounded() / 100; return "\(r)" }
func pct(_ p: Double) -> Duration { counted.isEmpty ? .zero : counted[min(counted.count - 1, Int(Double(counted.count) * p))] }
print("sent=\(n) received=\(all.count) rate=\(Int(rate))/s p50_ms=\(ms(pct(0.50))) p99_ms=\(ms(pct(0.99))) max_ms=\(ms(counted.last ?? .zero))")
exit(all.count == n ? 0 : 1)
