// msgflo-latency: a latency probe written with the SDK, and two helpers of the benchmarks.
//
//   msgflo-latency BROKER OUTQUEUE INQUEUE [N] [RATE]
//       Sends N messages (default 3000) at RATE per second (default 500) on OUTQUEUE, takes them back on INQUEUE
//       after whatever chain of participants lies between, and prints the round-trip latency percentiles (the first
//       5% are warm-up, not counted). Exit 1 when not every message came back.
//   msgflo-latency --raw-relay BROKER IN OUT
//       The transport alone, no SDK (consume IN, send each message to OUT, ack), to tell the SDK's overhead from the
//       transport's in the relay benchmark.
//   msgflo-latency --host BROKER FIRST LAST
//       Repeat participants a<i> and b<i> for i in FIRST...LAST, all in this process on one connection (the SDK runs
//       several participants per transport), for the observing benchmark's 1,000-node graph: every node a real
//       participant with its own queues, so that the daemon can wire every edge. Runs until killed.
//
// Arguments are parsed by the project's front door (MsgFloCLI, ArgumentParser): a bad one is one line on standard
// error and exit status 1; so is a failure to connect.
import ArgumentParser
import Logging
import MsgFlo
import MsgFloCLI
import MsgFloParticipant
import MsgFloTransports
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct LatencyArguments: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "msgflo-latency",
        abstract: "Round-trip latency of a chain of participants; --raw-relay and --host help the benchmarks.")

    @Flag(name: .customLong("raw-relay"), help: "Relay IN to OUT with the transport alone (arguments: BROKER IN OUT).")
    var rawRelay = false

    @Flag(help: "Host Repeat participants a<i> and b<i> for i in FIRST...LAST (arguments: BROKER FIRST LAST).")
    var host = false

    @Argument(help: "The broker URL.")
    var broker: String

    @Argument(help: ArgumentHelp("The probe: OUTQUEUE INQUEUE [N] [RATE]; --raw-relay: IN OUT; --host: FIRST LAST.",
                                 valueName: "arguments"))
    var rest: [String] = []

    enum Mode {
        case probe(out: String, in: String, count: Int, rate: Double)
        case rawRelay(in: String, out: String)
        case host(first: Int, last: Int)
    }

    /// What to do, or a one-line reason why the arguments do not say it.
    func mode() throws(ValidationError) -> Mode {
        if rawRelay && host { throw ValidationError("--raw-relay and --host exclude each other") }
        if rawRelay {
            guard rest.count == 2 else { throw ValidationError("--raw-relay takes BROKER IN OUT, got \(rest.count + 1) arguments") }
            return .rawRelay(in: rest[0], out: rest[1])
        }
        if host {
            guard rest.count == 2 else { throw ValidationError("--host takes BROKER FIRST LAST, got \(rest.count + 1) arguments") }
            guard let first = Int(rest[0]), let last = Int(rest[1]), 0 <= first, first <= last else {
                throw ValidationError("--host: FIRST and LAST must be whole numbers, 0 <= FIRST <= LAST")
            }
            return .host(first: first, last: last)
        }
        guard (2...4).contains(rest.count) else {
            throw ValidationError("expected BROKER OUTQUEUE INQUEUE [N] [RATE], got \(rest.count + 1) arguments")
        }
        var count = 3000
        if rest.count > 2 {
            guard let n = Int(rest[2]), n > 0 else { throw ValidationError("N must be a positive whole number") }
            count = n
        }
        var rate = 500.0
        if rest.count > 3 {
            guard let r = Double(rest[3]), r > 0, r.isFinite else { throw ValidationError("RATE must be a positive number of messages per second") }
            rate = r
        }
        return .probe(out: rest[0], in: rest[1], count: count, rate: rate)
    }

    func validate() throws {
        _ = try mode()
        _ = try brokerURL()
    }

    func brokerURL() throws(MsgFloError) -> BrokerURL { try BrokerURL(parsing: broker) }
}

let tool = "msgflo-latency"
let arguments = CommandMain.parse(LatencyArguments.self, tool: tool)
let url: BrokerURL
let mode: LatencyArguments.Mode
do {
    (url, mode) = (try arguments.brokerURL(), try arguments.mode())
} catch {
    CommandMain.fail(tool, "\(error)")
}
var logger = Logger(label: tool)
logger.logLevel = .warning

// Off the main actor: these functions are not isolated to it (top-level code is; a hop per message otherwise).

func rawRelay(_ url: BrokerURL, from inqueue: String, to outqueue: String, logger: Logger) async throws {
    try await withTransport(broker: url, logger: logger) { t in
        try await t.declareInport(inqueue)
        try await t.declareOutport(outqueue)
        let sub = try await t.consume(inqueue, options: ConsumeOptions(prefetch: 100))
        for await d in sub {
            try await t.send(toOutport: outqueue, d.message)
            d.ack()
        }
    }
}

func host(_ url: BrokerURL, _ first: Int, _ last: Int, logger: Logger) async throws {
    let repeatNode = Participant(component: "Repeat", inports: ["in"], outports: ["out"]) { _, msg, ctx in
        try await ctx.send("out", msg)
    }
    try await withTransport(broker: url, logger: logger) { t in
        var running: [RunningParticipant] = []
        for i in first...last {
            for role in ["a\(i)", "b\(i)"] {
                running.append(try await repeatNode.start(role: role, on: t, options: ParticipantOptions(prefetch: 1), logger: logger))
            }
        }
        print("hosting \(running.count) participants")
        fflush(nil)
        // Until SIGTERM (the benchmark kills it): the participants keep announcing in their own tasks.
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

final class Probe: Sendable {
    let sent = Mutex<[Int: ContinuousClock.Instant]>([:])
    let latencies = Mutex<[Duration]>([])
}

/// Sends `n` probes at `rate`/s on `outqueue` and returns the round-trip latencies of those that came back on
/// `inqueue` within 10 s of the last send.
func probe(_ url: BrokerURL, out outqueue: String, in inqueue: String, n: Int, rate: Double, logger: Logger) async throws -> [Duration] {
    let probe = Probe()
    let clock = ContinuousClock()
    let participant = Participant(component: "LatencyProbe", inports: ["in"], outports: ["out"]) { _, msg, _ in
        let now = clock.now
        guard let seq = msg.json?["seq"]?.intValue, let t0 = probe.sent.withLock({ $0.removeValue(forKey: seq) }) else { return }
        probe.latencies.withLock { $0.append(now - t0) }
    }
    try await withTransport(broker: url, logger: logger) { transport in
        let running = try await participant.start(role: "latency-probe", on: transport,
                                                  options: ParticipantOptions(prefetch: 50, queues: ["out": outqueue, "in": inqueue]),
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
    }
    return probe.latencies.withLock { $0 }
}

func ms(_ d: Duration) -> String {
    let (s, a) = d.components
    let v = Double(s) * 1000 + Double(a) / 1e15
    return "\((v * 100).rounded() / 100)"
}

do {
    switch mode {
    case .rawRelay(let inqueue, let outqueue):
        try await rawRelay(url, from: inqueue, to: outqueue, logger: logger)
    case .host(let first, let last):
        try await host(url, first, last, logger: logger)
    case .probe(let outqueue, let inqueue, let n, let rate):
        let all = try await probe(url, out: outqueue, in: inqueue, n: n, rate: rate, logger: logger)
        let counted = all.dropFirst(n / 20).sorted()
        func pct(_ p: Double) -> Duration { counted.isEmpty ? .zero : counted[min(counted.count - 1, Int(Double(counted.count) * p))] }
        print("sent=\(n) received=\(all.count) rate=\(Int(rate))/s p50_ms=\(ms(pct(0.50))) p99_ms=\(ms(pct(0.99))) max_ms=\(ms(counted.last ?? .zero))")
        CommandMain.exit(all.count == n ? 0 : 1)
    }
} catch {
    CommandMain.fail(tool, "\(error)")
}
CommandMain.exit(0)
