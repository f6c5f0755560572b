// The coordinator's benchmark driver, run by Scripts/bench-coordinator. Prints figures; asserts nothing.
//
//   msgflo-bench-coordinator discovery --broker URL [--count N] [--phase fill|drain|transport|both]
//                                                                  discovery messages handled per second
//   msgflo-bench-coordinator announce  --broker URL [--count N]   sends N distinct discovery messages and exits
//   msgflo-bench-coordinator wire      --broker URL [--nodes 1000 --edges 2000]   time to wire a graph (AMQP)
import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCLI
import MsgFloCoordinator
import MsgFloTransports

struct Options: ParsableArguments {
    enum Mode: String, ExpressibleByArgument, CaseIterable { case discovery, announce, wire }
    enum Phase: String, ExpressibleByArgument, CaseIterable { case fill, drain, transport, both }

    @Argument(help: "discovery: discovery messages handled per second; announce: send --count discovery messages; wire: time to wire a graph (AMQP).")
    var mode: Mode
    @OptionGroup var broker: BrokerArgument
    @Option(help: "Discovery messages (default: discovery 100000, announce 10000).")
    var count: Int?
    @Option(help: "discovery, AMQP: fill (leave the messages in fbp), drain (time the coordinator on them), transport (time the transport alone on them) or both.")
    var phase = Phase.both
    @Option(help: "wire: the graph's nodes.")
    var nodes = 1000
    @Option(help: "wire: the graph's edges.")
    var edges = 2000
    @Option(help: "wire: the prefix of the graph's roles.")
    var prefix = "wire"

    func validate() throws {
        guard count.map({ $0 >= 0 }) ?? true, nodes > 0, edges >= 0 else {
            throw ValidationError("--count, --nodes and --edges must be positive")
        }
    }
}

func fail(_ s: String) -> Never { CommandMain.fail("msgflo-bench-coordinator", s) }

let cli = CommandMain.parse(Options.self, tool: "msgflo-bench-coordinator")
let logger = CommandLogging.logger("bench", level: .error)
let mode = cli.mode
let broker: BrokerURL
do { broker = try cli.broker.url(environment: ProcessInfo.processInfo.environment) } catch { fail(error.message) }

func definition(_ i: Int, run: String) -> ParticipantDefinition {
    let role = "bench\(run)-\(i)"
    return ParticipantDefinition(id: "\(role)-x", role: role, component: "bench/Repeat", label: "bench participant",
                                 inports: [PortDefinition(id: "in", queue: "\(role).IN")],
                                 outports: [PortDefinition(id: "out", queue: "\(role).OUT"), PortDefinition(id: "err", queue: "\(role).ERR")],
                                 heartbeat: 3600)
}

func connected() async -> any Transport {
    let t: any Transport
    do { t = try Transports.make(broker, logger: logger) } catch { fail("\(error)") }
    do { try await t.connect() } catch { fail("cannot connect to \(broker): \(error)") }
    return t
}

let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)

switch mode {
case .announce:
    let count = cli.count ?? 10000
    let t = await connected()
    try await t.declareDiscoveryQueue()
    for i in 0..<count { try await t.announce(definition(i, run: run)) }
    try await Task.sleep(for: .milliseconds(500))
    await t.close()
    print("announced \(count) participants")

case .discovery:
    let count = cli.count ?? 100000
    // AMQP only: `fill` leaves the messages in fbp and exits (for a reference consumer, or a profile of the drain
    // alone); `drain` times the coordinator on what is there; `both` (default) does one then the other.
    let phase = cli.phase
    let distinct = 1000
    let messages = (0..<distinct).map { Discovery.message(for: definition($0, run: run)) }
    let publisher = await connected()
    let prefill = publisher.capabilities.contains(.queuesHoldMessages)
    if phase != .both && !prefill {
        fail("--phase \(phase.rawValue) needs a broker that keeps messages in queues (AMQP); \(broker.scheme.rawValue) does not")
    }
    if prefill && (phase == .fill || phase == .both) {
        // AMQP keeps them: fill fbp first, then time the coordinator alone.
        try await publisher.declareDiscoveryQueue()
        for i in 0..<count { try await publisher.send(toInport: discoveryQueue, messages[i % distinct]) }
        if phase == .fill {
            let deadline = ContinuousClock.now + .seconds(60)
            while (try? await publisher.queueDepth(discoveryQueue)) ?? 0 < count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            await publisher.close()
            print("filled \(discoveryQueue) with \(count) messages")
            exit(0)
        }
    }
    let daemonTransport = await connected()
    if phase == .transport {
        // The transport alone, without the coordinator's work: consume fbp as the coordinator does (prefetch 1000, on
        // the transport's own executor), acknowledge each batch, count. What the drain costs below the coordinator.
        await publisher.close()
        let t = daemonTransport
        try await Task.sleep(for: .seconds(1))
        let start = ContinuousClock.now
        let n = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask(executorPreference: t.preferredExecutor) {
                let sub = try await t.consume(discoveryQueue, options: ConsumeOptions(prefetch: 1000))
                var n = 0
                while n < count, let batch = await sub.nextBatch() {
                    for d in batch { d.ack() }
                    n += batch.count
                }
                return n
            }
            return try await group.next() ?? 0
        }
        let elapsed = (ContinuousClock.now - start).inSeconds
        print(String(format: "transport %@: %d messages drained in %.3f s = %.0f msg/s", broker.scheme.rawValue, n,
                     elapsed, Double(n) / elapsed))
        await daemonTransport.close()
        exit(0)
    }
    var options = CoordinatorOptions()
    options.answerStatus = false
    let c = Coordinator(transport: daemonTransport, options: options, logger: logger)
    try await publisher.declareDiscoveryQueue()
    // Drain alone: the coordinator on its one connection, as the C consumer (the publisher has nothing left to do).
    if phase == .drain { await publisher.close() }
    let start: ContinuousClock.Instant
    let task: Task<Void, any Error>
    if prefill {
        try await Task.sleep(for: .seconds(1))
        start = .now
        task = Task.detached { try await c.run() }  // (not on the main actor, which the wait below holds)
    } else {
        task = Task.detached { try await c.run() }  // (not on the main actor, which the wait below holds)
        try await Task.sleep(for: .seconds(1))
        start = .now
        for i in 0..<count { try await publisher.send(toInport: discoveryQueue, messages[i % distinct]) }
    }
    // Watched from this thread with a plain sleep and an atomic read: no hop onto the coordinator's actor and no
    // timer of Swift's, which would take their share of the CPU the run is measuring. The sleeps are a quarter of
    // the time the rate so far says is left (1-50 ms): few wake-ups while most of the run is ahead, and the end
    // seen within a millisecond or so.
    var last = 0
    var lastChange = ContinuousClock.now
    while true {
        let n = c.handled
        if n >= count { break }
        let now = ContinuousClock.now
        if n != last { last = n; lastChange = now }
        if now - lastChange > .seconds(3) { break }
        let left = n == 0 ? 0.02 : (now - start).inSeconds * Double(count - n) / Double(n)
        usleep(useconds_t(min(50_000, max(1000, left / 4 * 1e6))))
    }
    let handled = await c.observation.handled
    let elapsed = (ContinuousClock.now - start).inSeconds - (handled < count ? 3 : 0)
    let reg = await c.observation.registry.count
    print(String(format: "discovery %@: %d messages handled in %.3f s = %.0f msg/s (%d participants registered%@)",
                 broker.scheme.rawValue, handled, elapsed, Double(handled) / elapsed, reg,
                 handled < count ? ", \(count - handled) lost by the broker" : ""))
    task.cancel()
    await publisher.close()
    await daemonTransport.close()

case .wire:
    let nodes = cli.nodes
    let edges = cli.edges
    let prefix = cli.prefix
    let t = await connected()
    // The participants' queues, as they would declare them.
    for i in 0..<nodes {
        try await t.declareInport("\(prefix)-\(i).IN")
        try await t.declareOutport("\(prefix)-\(i).OUT")
        try await t.declareOutport("\(prefix)-\(i).ERR")
    }
    var options = CoordinatorOptions()
    options.answerStatus = false
    let c = Coordinator(transport: t, options: options, logger: logger)
    let task = Task { try await c.run() }
    var defs: [Result<ParticipantDefinition, MsgFloError>] = []
    for i in 0..<nodes {
        let role = "\(prefix)-\(i)"
        defs.append(.success(ParticipantDefinition(id: role + "-x", role: role, component: "Repeat",
                                                   inports: [PortDefinition(id: "in", queue: role + ".IN")],
                                                   outports: [PortDefinition(id: "out", queue: role + ".OUT"),
                                                              PortDefinition(id: "err", queue: role + ".ERR")])))
    }
    await c.handle(defs)
    _ = await c.wait(timeout: .seconds(30)) { $0.registry.count == nodes && $0.idle }
    var g = DesiredGraph()
    for i in 0..<nodes { g.setNode("\(prefix)-\(i)", .init(component: "Repeat")) }
    typealias E = DesiredGraph.Endpoint
    // Edge k: node (k/2)'s out or err to a node further on: the same pairs as the C loop.
    for k in 0..<edges {
        let i = (k / 2) % nodes
        let j = (i + 1 + (k % 2) * 6) % nodes
        g.edges.append(.init(E("\(prefix)-\(i)", k % 2 == 0 ? "out" : "err"), E("\(prefix)-\(j)", "in")))
    }
    let start = ContinuousClock.now
    await c.setGraph(g)
    let ok = await c.wait(timeout: .seconds(120)) { $0.idle && $0.wiring.bindings.count == edges }
    let elapsed = (ContinuousClock.now - start).inSeconds
    guard ok else { fail("wiring did not finish: \(await c.observation.wiring.bindings.count) of \(edges) bindings") }
    print(String(format: "wire %@: %d nodes, %d edges bound in %.3f s", broker.scheme.rawValue, nodes, edges, elapsed))
    print(String(format: "wire-seconds %.6f", elapsed))
    // Leave the broker as it was.
    await c.setGraph(DesiredGraph())
    _ = await c.wait(timeout: .seconds(120)) { $0.idle && $0.wiring.bindings.isEmpty }
    task.cancel()
    await t.close()

}
