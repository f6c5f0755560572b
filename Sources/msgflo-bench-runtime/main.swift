// The live runtime's benchmark driver, run by Scripts/bench-runtime against a running `msgflo --port`. Prints
// figures; asserts nothing.
//
//   msgflo-bench-runtime --broker URL --port P [--nodes 1000] [--probes 200] [--messages 20000]
//
// 1. graph edits per second over one WebSocket: addnode ×N, addedge ×N, removeedge ×N on an N-node graph, each
//    batch sent at once and timed until its last reply;
// 2. time from addedge to the binding in place (AMQP: bound on the broker; MQTT: routed by the coordinator, as the
//    fake participants take no connectinport): fake participants are announced on fbp, then for each probe edge a
//    message is published into the source's outport every millisecond from the moment addedge is sent until the
//    first one arrives in the target's queue (p50, p99), with the N-node graph of (1) still loaded;
// 3. network:data events per second for one edge carrying messages as fast as a producer sends them, next to the
//    producer's own rate, and how many events the client did not get.
import ArgumentParser
import Foundation
import HTTPTypes
import HummingbirdWSClient
import MsgFlo
import MsgFloCLI
import MsgFloTransports
import Synchronization

struct Options: ParsableArguments {
    @OptionGroup var broker: BrokerArgument
    @Option(help: "The port of the running `msgflo --port`.")
    var port = 3569
    @Option(help: "The graph's nodes.")
    var nodes = 1000
    @Option(help: "Edges whose binding is timed.")
    var probes = 200
    @Option(help: "Messages carried on the edge whose network:data events are counted.")
    var messages = 20000

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1...65535") }
        guard nodes > 0, probes > 0, messages > 0 else { throw ValidationError("--nodes, --probes and --messages must be positive") }
    }
}

func fail(_ s: String) -> Never { CommandMain.fail("msgflo-bench-runtime", s) }

let options = CommandMain.parse(Options.self, tool: "msgflo-bench-runtime")
let logger = CommandLogging.logger("bench", level: .error)
let broker: BrokerURL
do { broker = try options.broker.url(environment: ProcessInfo.processInfo.environment) } catch { fail(error.message) }
let port = options.port
let nodes = options.nodes
let probes = options.probes
let messages = options.messages
let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)

/// A flag set by one task and read by another.
final class Flag: Sendable {
    let m = Mutex(false)
    func set() { m.withLock { $0 = true } }
    var isSet: Bool { m.withLock { $0 } }
}

/// Counts replies by command, and the data events of one edge.
final class Inbox: Sendable {
    let counts = Mutex<[String: Int]>([:])
    let errors = Mutex<[String]>([])
    func count(_ c: String) -> Int { counts.withLock { $0[c] ?? 0 } }
}
let inbox = Inbox()
let (outgoing, outgoingContinuation) = AsyncStream<String>.makeStream()

func send(_ proto: String, _ command: String, _ payload: JSONValue) {
    outgoingContinuation.yield(JSONValue.object(["protocol": .string(proto), "command": .string(command), "payload": payload]).serialized)
}

func waitFor(_ command: String, _ n: Int, timeout: Duration = .seconds(120)) async {
    let deadline = ContinuousClock.now + timeout
    while inbox.count(command) < n {
        if ContinuousClock.now > deadline { fail("timed out waiting for \(n) \(command) (have \(inbox.count(command)); errors: \(inbox.errors.withLock { $0.prefix(3) }))") }
        try? await Task.sleep(for: .microseconds(200))
    }
}

let client = Task {
    var headers = HTTPFields()
    headers[.secWebSocketProtocol] = "noflo"
    try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/", configuration: .init(maxFrameSize: 1 << 24, additionalHeaders: headers),
                                      logger: logger) { inbound, outbound, _ in
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { for await text in outgoing { try await outbound.write(.text(text)) } }
            for try await m in inbound.messages(maxSize: 1 << 24) {
                guard case .text(let t) = m, let v = try? JSONValue(parsing: t), let c = v["command"]?.stringValue else { continue }
                inbox.counts.withLock { $0[c, default: 0] += 1 }
                if c == "error" { inbox.errors.withLock { $0.append(t) } }
            }
            group.cancelAll()
        }
    }
}

// The graph.
send("runtime", "getruntime", [:])
await waitFor("runtime", 1)
let graph = "bench\(run)"
send("graph", "clear", ["id": .string(graph)])
await waitFor("clear", 1)
// Stop the network so that nothing but edits happens during the first figure.
func timed(_ label: String, _ command: String, _ n: Int, _ make: (Int) -> JSONValue) async {
    let before = inbox.count(command)
    let t0 = ContinuousClock.now
    for i in 0..<n { send("graph", command, make(i)) }
    await waitFor(command, before + n)
    let s = (ContinuousClock.now - t0).inSeconds
    print("\(label): \(n) in " + String(format: "%.3f s = %.0f edits/s", s, Double(n) / s))
}
func role(_ i: Int) -> String { "n\(run)-\(i)" }
await timed("addnode", "addnode", nodes) { i in ["id": .string(role(i)), "component": "bench/Unknown", "graph": .string(graph)] }
await timed("addedge", "addedge", nodes) { i in
    ["src": ["node": .string(role(i)), "port": "out"], "tgt": ["node": .string(role((i + 1) % nodes)), "port": "in"], "graph": .string(graph)]
}
await timed("removeedge", "removeedge", nodes) { i in
    ["src": ["node": .string(role(i)), "port": "out"], "tgt": ["node": .string(role((i + 1) % nodes)), "port": "in"], "graph": .string(graph)]
}
// The edges again, so that the probes below are timed on a full N-node, N-edge graph.
await timed("addedge (again)", "addedge", nodes) { i in
    ["src": ["node": .string(role(i)), "port": "out"], "tgt": ["node": .string(role((i + 1) % nodes)), "port": "in"], "graph": .string(graph)]
}

// Fake participants for the probe edges and the data edge: announced, queues declared by us.
let transport: any Transport
do { transport = try Transports.make(broker, logger: logger) } catch { fail("\(error)") }
do { try await transport.connect() } catch { fail("cannot connect: \(error)") }
func participant(_ r: String) -> ParticipantDefinition {
    ParticipantDefinition(id: "\(r)-x", role: r, component: "bench/Fake", inports: [PortDefinition(id: "in", queue: "\(r).IN")],
                          outports: [PortDefinition(id: "out", queue: "\(r).OUT")], heartbeat: 3600)
}
do {
    var latencies: [Double] = []
    for k in 0..<probes {
        let a = "pa\(run)-\(k)", b = "pb\(run)-\(k)"
        for r in [a, b] {
            try await transport.declareInport("\(r).IN")
            try await transport.declareOutport("\(r).OUT")
            send("graph", "addnode", ["id": .string(r), "component": "bench/Fake", "graph": .string(graph)])
            try await transport.announce(participant(r))
        }
        // Let the coordinator learn both before the edge (what is timed is the edge, not discovery).
        try await Task.sleep(for: .milliseconds(30))
        let got = Flag()
        let sub = try await transport.consume("\(b).IN")
        let reader = Task { for await d in sub { d.ack(); got.set(); break } }
        let t0 = ContinuousClock.now
        send("graph", "addedge", ["src": ["node": .string(a), "port": "out"], "tgt": ["node": .string(b), "port": "in"], "graph": .string(graph)])
        var arrived: ContinuousClock.Instant?
        while ContinuousClock.now - t0 < .seconds(20) {
            try await transport.send(toOutport: "\(a).OUT", Message(text: "probe"))
            if got.isSet { arrived = .now; break }
            try await Task.sleep(for: .milliseconds(1))
        }
        reader.cancel()
        await sub.cancel()
        guard let arrived else { fail("probe edge \(a) -> \(b) never carried a message") }
        latencies.append((arrived - t0).inSeconds * 1000)
    }
    latencies.sort()
    func pct(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
    print(String(format: "addedge -> binding in place (\(transport.capabilities.contains(.brokerBindings) ? "AMQP" : "MQTT"), %d edges): p50 %.1f ms, p99 %.1f ms, max %.1f ms", probes, pct(0.5), pct(0.99), latencies.last!))
}

// Data events for one edge under a producer going flat out.
let src = "ds\(run)", dst = "dd\(run)"
for r in [src, dst] {
    try await transport.declareInport("\(r).IN")
    try await transport.declareOutport("\(r).OUT")
    send("graph", "addnode", ["id": .string(r), "component": "bench/Fake", "graph": .string(graph)])
    try await transport.announce(participant(r))
}
try await Task.sleep(for: .milliseconds(300))
send("graph", "addedge", ["src": ["node": .string(src), "port": "out"], "tgt": ["node": .string(dst), "port": "in"], "graph": .string(graph)])
// Wired and tapped once a probe shows up as a data event.
let dataBefore = inbox.count("data")
let probeStart = ContinuousClock.now
while inbox.count("data") == dataBefore {
    if ContinuousClock.now - probeStart > .seconds(30) { fail("the data edge never showed data") }
    try await transport.send(toOutport: "\(src).OUT", Message(text: "probe"))
    try await Task.sleep(for: .milliseconds(20))
}
try await Task.sleep(for: .milliseconds(300))
let base = inbox.count("data")
let payload = Message(text: String(repeating: "x", count: 100))
let p0 = ContinuousClock.now
for _ in 0..<messages { try await transport.send(toOutport: "\(src).OUT", payload) }
let produced = (ContinuousClock.now - p0).inSeconds
// Until no more events arrive for a second.
var last = inbox.count("data"), lastChange = ContinuousClock.now, lastEvent = ContinuousClock.now
while ContinuousClock.now - lastChange < .seconds(1) {
    try await Task.sleep(for: .milliseconds(20))
    let n = inbox.count("data")
    if n != last { last = n; lastChange = .now; lastEvent = .now }
}
let delivered = last - base
let span = (lastEvent - p0).inSeconds
print(String(format: "network:data: producer %d messages in %.3f s = %.0f msg/s; client got %d events in %.3f s = %.0f events/s (%.2fx the producer's rate); %d not delivered",
             messages, produced, Double(messages) / produced, delivered, span, Double(delivered) / span,
             (Double(delivered) / span) / (Double(messages) / produced), max(0, messages - delivered)))

send("graph", "clear", ["id": .string("main")])
await waitFor("clear", 2)
outgoingContinuation.finish()
client.cancel()
await transport.close()
