// Failover benchmark on the three-node test cluster (Scripts/brokers cluster, issue 15): numbered messages go, at a
// steady rate and each confirmed by the broker, from a sender into a quorum inport queue, through a relay (consume,
// send to its outport, ack: what a participant does) into a quorum sink queue and its consumer; each of the three has
// its own connection to the cluster's address list. Then, KILLS times, the node they are connected to is killed
// (kill -9, `Scripts/brokers cluster kill N`) and the time until a message sent after the kill arrives at the sink is
// measured (the benchmark kills the node's server itself, from the pid file in DIR, default the script's
// repository's .brokers/cluster, so that the instant of the kill is exact); the node is revived before the next round. At the end every number must have arrived.
//
//   msgflo-bench-failover --broker URL --script Scripts/brokers [--kills N] [--rate PER_SECOND] [--cluster-dir DIR] [--log-level L]
//
// URL: all three nodes in order (node 1 first), e.g. amqp://guest:guest@127.0.0.1:26840,127.0.0.1:26850,127.0.0.1:26860/
// (?queue-type=quorum is added). The clients start on node 1; after a node's death they go to the next address, so
// round k kills node ((k-1) mod 3) + 1. Prints one line per kill and a summary line:
//   failover kills=N p50_s=… max_s=… sent=… lost=… redelivered=…
import ArgumentParser
import Foundation
import Logging
import MsgFlo
import MsgFloCLI
import MsgFloProcess
import MsgFloTransports
import Synchronization

struct Options: ParsableArguments {
    @OptionGroup var broker: BrokerArgument
    @Option(help: ArgumentHelp("The brokers script (Scripts/brokers) that revives a killed node.", valueName: "PATH"))
    var script: String
    @Option(help: "Nodes killed, one after another (1 to 100).")
    var kills = 10
    @Option(help: ArgumentHelp("Messages sent per second (1 to 10000).", valueName: "PER_SECOND"))
    var rate = 200
    @Option(name: .customLong("cluster-dir"), help: ArgumentHelp(
        "The cluster's directory (its nodes' pid files). Default: .brokers/cluster of the script's repository.", valueName: "DIR"))
    var clusterDir: String?
    @Option(name: .customLong("log-level"), help: "The clients' log level.")
    var logLevel = "error"

    func validate() throws {
        guard (1...100).contains(kills) else { throw ValidationError("--kills must be 1 to 100") }
        guard (1...10_000).contains(rate) else { throw ValidationError("--rate must be 1 to 10000") }
    }
}

let tool = "msgflo-bench-failover"
let options = CommandMain.parse(Options.self, tool: tool)
let script = options.script
let kills = options.kills
let rate = options.rate
let logLevel = Logger.Level(rawValue: options.logLevel) ?? .error
let clusterDir = options.clusterDir
    ?? URL(fileURLWithPath: script).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".brokers/cluster").path
let brokerText: String
do { brokerText = try options.broker.url(environment: ProcessInfo.processInfo.environment).unredacted } catch {
    CommandMain.fail(tool, error.message)
}

func line(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }

/// Runs the brokers script (``ChildProcess``: signals reset, stdout to /dev/null, stderr ours; its exit awaited off
/// the cooperative pool; it may start brokers that outlive this process, so no death signal).
func runScript(_ arguments: [String]) async throws {
    let child = try await ChildProcess.spawn([script] + arguments, environment: ProcessInfo.processInfo.environment,
                                             stderr: OutputPipe.duplicate(STDERR_FILENO), deathSignal: 0)
    let exit = await child.waitUntilExit()
    guard exit == .exited(0) else {
        throw MsgFloError(.connectionFailed, "\(script) \(arguments.joined(separator: " ")) failed (\(exit))")
    }
}

/// What reached the sink: every number (with duplicates counted) and when the latest arrived.
final class Arrivals: Sendable {
    struct State { var seen = Set<Int>(); var total = 0; var highest = -1; var highestAt = ContinuousClock.now }
    let state = Mutex(State())
    func add(_ n: Int) {
        state.withLock { s in
            s.seen.insert(n); s.total += 1
            if n > s.highest { s.highest = n; s.highestAt = .now }
        }
    }
    var snapshot: State { state.withLock { $0 } }
}

/// The sender's progress: the next number to send, sends that failed (and were made again), the stop flag.
final class Counters: Sendable {
    let next = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

func connected(_ url: BrokerURL, _ label: String) async throws -> any Transport {
    let logger = CommandLogging.logger(label, level: logLevel)
    let t = try Transports.make(url, logger: logger,
                                timeouts: TransportTimeouts(connect: .seconds(20), operation: .seconds(30), reconnectWait: .seconds(120)))
    try await t.connect()
    return t
}

func run() async throws {
    let url = try BrokerURL(parsing: brokerText + (brokerText.contains("?") ? "&" : "?") + "queue-type=quorum")
    let sender = try await connected(url, "bench.failover.sender")
    let relay = try await connected(url, "bench.failover.relay")
    let sink = try await connected(url, "bench.failover.sink")
    let tag = "\(getpid())"
    let inQ = "bench.fo.in-\(tag)", outQ = "bench.fo.out-\(tag)", sinkQ = "bench.fo.sink-\(tag)"
    try await relay.declareInport(inQ)
    try await relay.declareOutport(outQ)
    try await sink.declareInport(sinkQ)
    try await sink.addBinding(Binding(src: outQ, tgt: sinkQ))
    let arrivals = Arrivals()
    let counters = Counters()
    try await withThrowingTaskGroup(of: Void.self) { group in
        let relayed = try await relay.consume(inQ, options: ConsumeOptions(prefetch: 100))
        group.addTask {
            for await d in relayed {
                try? await relay.send(toOutport: outQ, d.message)
                d.ack()
            }
        }
        let sunk = try await sink.consume(sinkQ, options: ConsumeOptions(prefetch: 500))
        group.addTask {
            for await d in sunk {
                if let n = d.message.text.flatMap({ Int($0) }) { arrivals.add(n) }
                d.ack()
            }
        }
        group.addTask {
            // One at a time, each confirmed: a send that fails (its node died before the confirm) is sent again.
            let pause = Duration.seconds(1) / rate
            while !counters.stop.load(ordering: .relaxed) {
                let n = counters.next.load(ordering: .relaxed)
                do {
                    try await sender.sendRouted(toInport: inQ, Message(text: "\(n)"))
                    counters.next.store(n + 1, ordering: .relaxed)
                } catch {
                    counters.failed.add(1, ordering: .relaxed)
                }
                try await Task.sleep(for: pause)
            }
        }
        do {
            var recoveries: [Double] = []
            for k in 1...kills {
                let node = (k - 1) % 3 + 1
                // Flowing: something sent now arrives.
                let mark = counters.next.load(ordering: .relaxed)
                let flowDeadline = ContinuousClock.now + .seconds(60)
                while arrivals.snapshot.highest < mark {
                    guard ContinuousClock.now < flowDeadline else { throw MsgFloError(.timeout, "no data flowing before kill \(k)") }
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await Task.sleep(for: .seconds(1))
                // kill -9 of the node's server here rather than by the script, so that the instant is exact.
                let pidFile = clusterDir + "/n\(node)/rabbitmq.pid"
                guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                      let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 else {
                    throw MsgFloError(.notFound, "no pid of cluster node \(node) in \(pidFile)")
                }
                let sentBefore = counters.next.load(ordering: .relaxed)
                let killedAt = ContinuousClock.now
                guard kill(pid, SIGKILL) == 0 else { throw MsgFloError(.notFound, "kill -9 of node \(node) (pid \(pid)) failed") }
                let deadline = killedAt + .seconds(120)
                while true {
                    let s = arrivals.snapshot
                    if s.highest > sentBefore { break }
                    guard ContinuousClock.now < deadline else { throw MsgFloError(.timeout, "no data flowing 120 s after kill \(k)") }
                    try await Task.sleep(for: .milliseconds(5))
                }
                // The first arrival of a number sent after the kill (the sender sent it once it had failed over too).
                let recovered = (arrivals.snapshot.highestAt - killedAt) / .seconds(1)
                recoveries.append(recovered)
                line(String(format: "kill %d: node %d, data flowing again after %.2f s", k, node, recovered))
                try await runScript(["cluster", "revive", "\(node)"])
            }
            counters.stop.store(true, ordering: .relaxed)
            let sent = counters.next.load(ordering: .relaxed)
            let deadline = ContinuousClock.now + .seconds(120)
            while arrivals.snapshot.seen.count < sent && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            let s = arrivals.snapshot
            let lost = (0..<sent).reduce(0) { $0 + (s.seen.contains($1) ? 0 : 1) }
            let sorted = recoveries.sorted()
            let p50 = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            line(String(format: "failover kills=%d p50_s=%.2f max_s=%.2f sent=%d lost=%d redelivered=%d send_retries=%d rate=%d/s",
                        kills, p50, sorted.last ?? 0, sent, lost, s.total - s.seen.count, counters.failed.load(ordering: .relaxed), rate))
            group.cancelAll()
            await sender.close(); await relay.close(); await sink.close()
            CommandMain.exit(lost > 0 ? 1 : 0)
        } catch {
            // Exits at once: the consumers' loops would hold the task group open.
            CommandMain.fail(tool, "\(error)")
        }
    }
}

do {
    try await run()
} catch {
    CommandMain.fail(tool, "\(error)")
}
