import Foundation
import Logging
import MsgFlo
import MsgFloCoordinator
import MsgFloTransports
import Synchronization
import TestSupport
import Testing

/// The coordinator against the real brokers of Scripts/brokers (both kinds). Without them these tests fail.
func quietLogger() -> Logger {
    testLogger("coordinator-test", level: .critical)
}

func connect(_ kind: TestBrokers.Kind) async throws -> any Transport {
    let t = try Transports.make(try TestBrokers.url(kind), logger: quietLogger())
    try await t.connect()
    return t
}

/// A participant made of a bare transport: repeats `in` to `out`. With `commands`, it takes connectinport and
/// disconnectinport on its inqueue (consuming the source queue too), as the SDK does.
final class TestRepeater: Sendable {
    let transport: any Transport
    let definition: ParticipantDefinition
    let tasks = Mutex<[Task<Void, Never>]>([])

    /// `keepAnnouncing`: re-announce every 0.5 s as real participants do (every period/2.2): on AMQP `fbp` is one work
    /// queue, so a coordinator of another test running at the same time may take an announcement.
    init(_ kind: TestBrokers.Kind, id: String, role: String, heartbeat: Double? = nil, commands: Bool = false,
         keepAnnouncing: Bool = true) async throws {
        transport = try await connect(kind)
        definition = ParticipantDefinition(
            id: id, role: role, component: "test/Repeat",
            inports: [PortDefinition(id: "in", queue: "\(role).IN")],
            outports: [PortDefinition(id: "out", queue: "\(role).OUT")],
            heartbeat: heartbeat, inqueue: commands ? "\(role).COMMANDS" : nil,
            capabilities: commands ? ["connectinport", "disconnectinport"] : nil)
        try await transport.declareInport("\(role).IN")
        try await transport.declareOutport("\(role).OUT")
        try await repeatFrom("\(role).IN")
        if commands {
            try await transport.declareInport("\(role).COMMANDS")
            let sub = try await transport.consume("\(role).COMMANDS")
            let t = Task { [self] in
                for await d in sub {
                    d.ack()
                    if let c = try? CoordinatorCommand(parsing: d.message), c.command == .connectInport {
                        try? await self.repeatFrom(c.queue)
                    }
                }
            }
            tasks.withLock { $0.append(t) }
        }
        try await transport.declareDiscoveryQueue()
        try await transport.announce(definition)
        if keepAnnouncing {
            let transport = self.transport, definition = self.definition
            let t = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(500))
                    try? await transport.announce(definition)
                }
            }
            tasks.withLock { $0.append(t) }
        }
    }

    func repeatFrom(_ queue: String) async throws {
        let sub = try await transport.consume(queue)
        let out = definition.outports[0].queue!
        let transport = self.transport
        let t = Task {
            for await d in sub {
                try? await transport.send(toOutport: out, d.message)
                d.ack()
            }
        }
        tasks.withLock { $0.append(t) }
    }

    func announce() async throws { try await transport.announce(definition) }

    func stop() async {
        tasks.withLock { $0.forEach { $0.cancel() } }
        await transport.close()
    }
}

/// Reads what comes out of an outport.
final class Tap: Sendable {
    final class Box: Sendable { let values = Mutex<[JSONValue]>([]) }
    let sub: Subscription
    let box = Box()
    let task: Task<Void, Never>

    init(_ t: any Transport, _ queue: String) async throws {
        let sub = try await t.subscribeData(queue)
        self.sub = sub
        let box = self.box
        task = Task { for await d in sub { if let j = d.message.json { box.values.withLock { $0.append(j) } } } }
    }

    var values: [JSONValue] { box.values.withLock { $0 } }

    func wait(count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if values.count >= count { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return values.count >= count
    }
}

/// One serialized suite for every coordinator test on the real brokers: on AMQP, coordinators running at once would
/// share the `fbp` work queue.
@Suite(.serialized) struct CoordinatorIntegration {}

extension CoordinatorIntegration {
@Suite(.serialized) struct CoordinatorBrokerTests {
    typealias E = DesiredGraph.Endpoint

    func graph(_ a: String, _ b: String, iip: JSONValue) -> DesiredGraph {
        DesiredGraph(nodes: [(a, .init(component: "test/Repeat")), (b, .init(component: "test/Repeat"))],
                     edges: [.init(E(a, "out"), E(b, "in"))], initials: [.init(iip, to: E(a, "in"))])
    }

    func start(_ kind: TestBrokers.Kind, _ g: DesiredGraph, timeout: Double = 600,
               configure: (inout CoordinatorOptions) -> Void = { _ in }) async throws -> (Coordinator, Task<Void, any Error>) {
        let t = try await connect(kind)
        var o = CoordinatorOptions()
        o.participantTimeout = timeout
        o.tick = .milliseconds(100)
        o.answerStatus = false
        configure(&o)
        let c = Coordinator(transport: t, graph: g, options: o, logger: quietLogger())
        let task = Task { try await c.run() }
        return (c, task)
    }

    func stop(_ c: Coordinator, _ task: Task<Void, any Error>) async {
        task.cancel()
        _ = try? await task.value
        await c.transport.close()
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func graphBeforeParticipantsIsPendingThenWiredAndDataFlows(_ kind: TestBrokers.Kind) async throws {
        let a = TestBrokers.unique("a"), b = TestBrokers.unique("b")
        let (c, task) = try await start(kind, graph(a, b, iip: ["n": 1]))
        #expect(await c.wait { $0.plan.pendingRoles == [a, b] })
        let pb = try await TestRepeater(kind, id: b + "-1", role: b)
        let tap = try await Tap(pb.transport, "\(b).OUT")
        #expect(await c.wait { $0.plan.pendingRoles == [a] })
        let pa = try await TestRepeater(kind, id: a + "-1", role: a)
        #expect(await c.wait { $0.plan.pendingRoles.isEmpty && $0.idle })
        #expect(await tap.wait(count: 1))
        #expect(tap.values.first == ["n": 1])
        // Data sent into a now flows a -> b.
        try await pa.transport.send(toInport: "\(a).IN", Message(json: ["n": 2]))
        #expect(await tap.wait(count: 2))
        #expect(tap.values.last == ["n": 2])
        await pa.stop(); await pb.stop()
        await stop(c, task)
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func killedAndRestartedParticipantIsWiredAndFedAgain(_ kind: TestBrokers.Kind) async throws {
        let a = TestBrokers.unique("a"), b = TestBrokers.unique("b")
        let (c, task) = try await start(kind, graph(a, b, iip: "go"))
        let pb = try await TestRepeater(kind, id: b + "-1", role: b)
        let tap = try await Tap(pb.transport, "\(b).OUT")
        let a1 = try await TestRepeater(kind, id: a + "-1", role: a)
        #expect(await tap.wait(count: 1))
        await a1.stop()
        let a2 = try await TestRepeater(kind, id: a + "-2", role: a)
        #expect(await tap.wait(count: 2))
        #expect(tap.values == ["go", "go"])
        try await a2.transport.send(toInport: "\(a).IN", Message(json: "after"))
        #expect(await tap.wait(count: 3))
        await a2.stop(); await pb.stop()
        await stop(c, task)
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func shortHeartbeatLostThenBack(_ kind: TestBrokers.Kind) async throws {
        let r = TestBrokers.unique("h")
        let (c, task) = try await start(kind, DesiredGraph(nodes: [(r, .init(component: "test/Repeat"))]))
        // The participant announces once: the coordinator must be consuming fbp by then (on MQTT, QoS 0, a message
        // sent before the subscription is gone). It plans the pending role once it is.
        #expect(await c.wait { $0.plan.pendingRoles == [r] })
        let p = try await TestRepeater(kind, id: r + "-1", role: r, heartbeat: 1, keepAnnouncing: false)
        #expect(await c.wait { $0.registry[r + "-1"]?.alive == true })
        #expect(await c.wait(timeout: .seconds(5)) { $0.registry[r + "-1"]?.alive == false })
        // The plan follows in the next (coalesced) reconcile pass.
        #expect(await c.wait { $0.plan.pendingRoles == [r] })
        try await p.announce()
        #expect(await c.wait { $0.registry[r + "-1"]?.alive == true && $0.plan.pendingRoles.isEmpty })
        await p.stop()
        await stop(c, task)
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func floodOfMalformedThenValid(_ kind: TestBrokers.Kind) async throws {
        let (c, task) = try await start(kind, DesiredGraph())
        let t = try await connect(kind)
        try await t.declareDiscoveryQueue()
        let bad: [Message] = [Message(text: "garbage"), Message(json: ["protocol": "discovery"]), Message(json: [1, 2]),
                              Message(json: ["protocol": "discovery", "command": "participant", "payload": ["id": "x"]]),
                              Message(bytes: [UInt8](repeating: 0x5B, count: 300_000))]
        try await Task.sleep(for: .milliseconds(300))
        for i in 0..<1000 { try await t.send(toInport: discoveryQueue, bad[i % bad.count]) }
        let id = TestBrokers.unique("valid")
        try await t.announce(ParticipantDefinition(id: id, role: id, component: "X"))
        #expect(await c.wait(timeout: .seconds(20)) { $0.registry[id] != nil })
        #expect(await c.observation.rejected >= 900)   // MQTT QoS 0 may drop a few under a flood
        await t.close()
        await stop(c, task)
    }

    /// More announcements than the discovery prefetch (1000): they only all arrive if each is acknowledged once
    /// applied. Re-announcements refresh; a changed definition still replaces the registered one.
    @Test func amqpFloodBeyondThePrefetchIsAppliedAndAcknowledged() async throws {
        let (c, task) = try await start(.amqp, DesiredGraph())
        let t = try await connect(.amqp)
        try await t.declareDiscoveryQueue()
        let prefix = TestBrokers.unique("flood")
        let defs = (0..<50).map { ParticipantDefinition(id: "\(prefix)-\($0)", role: "\(prefix)-\($0)", component: "X") }
        let before = await c.observation.handled
        let n = 3000
        for i in 0..<n { try await t.announce(defs[i % defs.count]) }
        #expect(await c.wait(timeout: .seconds(30)) { $0.handled - before >= n })
        let registered = await c.observation.registry
        #expect(defs.allSatisfy { registered[$0.id]?.definition == $0 && registered[$0.id]?.alive == true })
        var changed = defs[7]
        changed.label = "changed"
        changed.outports = [PortDefinition(id: "out", queue: "\(changed.role).OUT")]
        try await t.announce(changed)
        let expected = changed
        #expect(await c.wait { $0.registry[expected.id]?.definition == expected })
        try await t.announce(defs[7])  // and back to the first, seen before
        #expect(await c.wait { $0.registry[expected.id]?.definition == defs[7] })
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await t.queueDepth(discoveryQueue) == 0)
        await t.close()
        await stop(c, task)
    }

    @Test func mqttNetworkOfCommandTakersKeepsFlowingAfterTheDaemonStops() async throws {
        let a = TestBrokers.unique("a"), b = TestBrokers.unique("b")
        let (c, task) = try await start(.mqtt, graph(a, b, iip: "first"))
        let pb = try await TestRepeater(.mqtt, id: b + "-1", role: b, commands: true)
        let tap = try await Tap(pb.transport, "\(b).OUT")
        let pa = try await TestRepeater(.mqtt, id: a + "-1", role: a, commands: true)
        #expect(await tap.wait(count: 1))
        #expect(await c.observation.wiring.bindings.isEmpty)   // no routing: connectinport did it
        await stop(c, task)
        try await pa.transport.send(toInport: "\(a).IN", Message(json: "after the daemon"))
        #expect(await tap.wait(count: 2))
        #expect(tap.values.last == "after the daemon")
        await pa.stop(); await pb.stop()
    }
}
}
