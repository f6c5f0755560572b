import Logging
import MsgFlo
import Synchronization
import TestSupport
import Testing
@testable import MsgFloCoordinator

final class FakeClock: Sendable {
    let t = Mutex<Double>(1000)
    func advance(_ s: Double) { t.withLock { $0 += s } }
    var now: @Sendable () -> Double { { [self] in self.t.withLock { $0 } } }
}

/// A participant that repeats its input, on the in-memory broker.
struct Repeater {
    let transport: InMemoryTransport
    let definition: ParticipantDefinition
    let task: Task<Void, Never>

    static func start(_ broker: InMemoryBroker, id: String, role: String, commands: Bool = false, heartbeat: Double? = nil) async throws -> Repeater {
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        let def = participant(id, role: role, heartbeat: heartbeat, commands: commands)
        for p in def.inports { try await t.declareInport(p.queue!) }
        for p in def.outports { try await t.declareOutport(p.queue!) }
        let sub = try await t.consume(def.inports[0].queue!)
        let out = def.outports[0].queue!
        let task = Task {
            for await d in sub {
                try? await t.send(toOutport: out, d.message)
                d.ack()
            }
        }
        try await t.declareDiscoveryQueue()
        try await t.announce(def)
        return Repeater(transport: t, definition: def, task: task)
    }

    func stop() async {
        task.cancel()
        await transport.close()
    }
}

@Suite(.serialized) struct CoordinatorInMemoryTests {
    typealias E = DesiredGraph.Endpoint
    static let graph = DesiredGraph(
        nodes: [("a", .init(component: "Repeat")), ("b", .init(component: "Repeat"))],
        edges: [.init(E("a", "out"), E("b", "in"))],
        initials: [.init(["hello": "world"], to: E("a", "in"))])

    func makeCoordinator(_ broker: InMemoryBroker, clock: FakeClock = FakeClock(), graph: DesiredGraph = Self.graph,
                         timeout: Double = 600) async throws -> (Coordinator, Task<Void, any Error>) {
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        var options = CoordinatorOptions()
        options.participantTimeout = timeout
        options.tick = .milliseconds(20)
        let logger = testLogger(level: .critical)
        let c = Coordinator(transport: t, graph: graph, options: options, logger: logger, now: clock.now)
        let task = Task { try await c.run() }
        #expect(await c.wait { _ in broker.queueNames.contains("fbp") })
        return (c, task)
    }

    @Test func graphBeforeParticipantsIsPendingThenWiredAndDataFlows() async throws {
        let broker = InMemoryBroker()
        let (c, task) = try await makeCoordinator(broker)
        defer { task.cancel() }
        #expect(await c.wait { $0.plan.pendingRoles == ["a", "b"] })

        let b = try await Repeater.start(broker, id: "b-1", role: "b")
        let tap = try await b.transport.subscribeData("b.OUT")
        #expect(await c.wait { $0.plan.pendingRoles == ["a"] })
        let a = try await Repeater.start(broker, id: "a-1", role: "a")
        #expect(await c.wait { $0.plan.pendingRoles.isEmpty && $0.idle })
        #expect(broker.boundQueues("a.OUT") == ["b.IN"])

        // The IIP went into a.IN, through a, the binding and b.
        var it = tap.makeAsyncIterator()
        let first = await it.next()
        #expect(first?.message.json == ["hello": "world"])
        await a.stop(); await b.stop()
    }

    /// Live edits change the desired graph at once and a burst of them is carried out by one reconcile pass (an
    /// edit costs what it changes, not a pass over the whole graph); a refused edit changes nothing.
    @Test func aBurstOfEditsIsAppliedAtOnceAndWiredInOnePass() async throws {
        let broker = InMemoryBroker()
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        var options = CoordinatorOptions()
        // Long enough that the whole burst below is made before the pass (it takes well under a second).
        options.reconcileBatchDelay = .seconds(2)
        let logger = testLogger(level: .critical)
        let c = Coordinator(transport: t, graph: DesiredGraph(), options: options, logger: logger)
        let task = Task { try await c.run() }
        defer { task.cancel() }
        let a = try await Repeater.start(broker, id: "a-1", role: "a")
        let b = try await Repeater.start(broker, id: "b-1", role: "b")
        #expect(await c.wait { $0.registry.roles == ["a", "b"] && $0.idle })
        let before = await c.passes

        let n = 200
        try await c.edit { (g: inout DesiredGraph) throws(MsgFloError) in g.setNode("a", .init(component: "Repeat")) }
        try await c.edit { (g: inout DesiredGraph) throws(MsgFloError) in g.setNode("b", .init(component: "Repeat")) }
        for i in 0..<n {
            try await c.edit { (g: inout DesiredGraph) throws(MsgFloError) in g.setNode("x\(i)", .init(component: "Unknown")) }
            try await c.edit(nodes: false) { (g: inout DesiredGraph) throws(MsgFloError) in g.edges.append(.init(E("a", "out"), E("x\(i)", "in"))) }
        }
        try await c.edit(nodes: false) { (g: inout DesiredGraph) throws(MsgFloError) in g.edges.append(.init(E("a", "out"), E("b", "in"))) }
        await #expect(throws: MsgFloError.self) {
            try await c.edit { (g: inout DesiredGraph) throws(MsgFloError) in
                guard g.nodes["nope"] != nil else { throw MsgFloError(.notFound, "no node nope") }
                g.setNode("never", .init(component: "Repeat"))
            }
        }
        // Applied as each edit returned, before any pass.
        let g = await c.currentGraph
        #expect(g.roles.count == n + 2 && g.edges.count == n + 1 && g.nodes["never"] == nil)
        #expect(await c.passes == before)

        #expect(await c.wait(timeout: .seconds(20)) { $0.plan.edges[.init(E("a", "out"), E("b", "in"))] == .wired && $0.idle })
        #expect(broker.boundQueues("a.OUT") == ["b.IN"])
        #expect(await c.passes == before + 1)
        #expect(await c.currentPlan.pendingRoles.count == n)
        await a.stop(); await b.stop()
    }

    @Test func restartedParticipantIsFedAgain() async throws {
        let broker = InMemoryBroker()
        let clock = FakeClock()
        let (c, task) = try await makeCoordinator(broker, clock: clock, timeout: 5)
        defer { task.cancel() }
        let b = try await Repeater.start(broker, id: "b-1", role: "b")
        let tap = try await b.transport.subscribeData("b.OUT")
        var it = tap.makeAsyncIterator()
        let a1 = try await Repeater.start(broker, id: "a-1", role: "a")
        #expect(await it.next()?.message.json == ["hello": "world"])
        await a1.stop()
        clock.advance(6)
        try await b.transport.announce(b.definition)
        #expect(await c.wait { $0.registry["a-1"]?.alive == false })
        #expect(await c.wait { $0.plan.pendingRoles == ["a"] })
        let a2 = try await Repeater.start(broker, id: "a-2", role: "a")
        #expect(await it.next()?.message.json == ["hello": "world"])
        #expect(await c.wait { $0.wiring.fed.values.first == ["a-1", "a-2"] })
        await a2.stop(); await b.stop()
    }

    /// A wired edge keeps its data tap while its source participant is lost (a missed heartbeat): the messages that
    /// still pass (AMQP: the bindings stay) are seen, and no tap is dropped and made again.
    @Test func aWiredEdgeStaysTappedWhileItsSourceIsLost() async throws {
        let broker = InMemoryBroker()
        let clock = FakeClock()
        let (c, task) = try await makeCoordinator(broker, clock: clock, timeout: 5)
        defer { task.cancel() }
        let seen = Mutex<[JSONValue]>([])
        c.events.observe { e in
            if case .data(_, let m) = e, let j = m.json { seen.withLock { $0.append(j) } }
        }
        await c.enableDataTaps()
        let b = try await Repeater.start(broker, id: "b-1", role: "b")
        let a = try await Repeater.start(broker, id: "a-1", role: "a")
        let edge = DesiredGraph.Edge(E("a", "out"), E("b", "in"))
        #expect(await c.wait { $0.plan.edges[edge] == .wired && $0.idle })
        for _ in 0..<500 where await c.taps["a.OUT"] == nil { try await Task.sleep(for: .milliseconds(10)) }
        // a falls silent: lost, its edge still wired by the bindings.
        clock.advance(6)
        try await b.transport.announce(b.definition)
        #expect(await c.wait { $0.registry["a-1"]?.alive == false && $0.idle })
        let plan = await c.currentPlan
        try #require(plan.edges[edge] == .wired, "\(String(describing: plan.edges[edge]))")
        #expect(await c.taps["a.OUT"] != nil)
        try await a.transport.send(toOutport: "a.OUT", Message(json: ["while": "lost"]))
        for _ in 0..<500 where !seen.withLock({ $0.contains(["while": "lost"]) }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(seen.withLock { $0.contains(["while": "lost"]) })
        c.events.observe(nil)
        await a.stop(); await b.stop()
    }

    @Test func sameMessageTwiceAndChangedDefinition() async throws {
        let broker = InMemoryBroker()
        let clock = FakeClock()
        let (c, task) = try await makeCoordinator(broker, clock: clock)
        defer { task.cancel() }
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        let p = participant("x-1", role: "x")
        try await t.announce(p)
        #expect(await c.wait { $0.registry["x-1"] != nil })
        clock.advance(3)
        try await t.announce(p)
        #expect(await c.wait { $0.registry["x-1"]?.lastSeen == 1003 })
        #expect(await c.observation.registry.count == 1)
        #expect(await c.observation.registry["x-1"]?.firstSeen == 1000)
        var q = p
        q.inports.append(PortDefinition(id: "extra", type: "string", queue: "foo"))
        try await t.announce(q)
        let changed = q
        #expect(await c.wait { $0.registry["x-1"]?.definition == changed })
        #expect(await c.observation.registry.count == 1)
    }

    @Test func shortHeartbeatLostThenBack() async throws {
        let broker = InMemoryBroker()
        let clock = FakeClock()
        let (c, task) = try await makeCoordinator(broker, clock: clock)
        defer { task.cancel() }
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        let p = participant("h-1", role: "h", heartbeat: 1)
        try await t.announce(p)
        #expect(await c.wait { $0.registry["h-1"]?.alive == true })
        clock.advance(1.5)
        #expect(await c.wait { $0.registry["h-1"]?.alive == false })
        try await t.announce(p)
        #expect(await c.wait { $0.registry["h-1"]?.alive == true })
    }

    @Test func floodOfGarbageThenValid() async throws {
        let broker = InMemoryBroker()
        let (c, task) = try await makeCoordinator(broker)
        defer { task.cancel() }
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        let garbage: [Message] = [
            Message(text: "not json"), Message(text: "{\"protocol\":\"discovery\""), Message(json: 42),
            Message(json: ["protocol": "discovery", "command": "participant"]),
            Message(json: ["protocol": "discovery", "command": "participant", "payload": ["id": "x"]]),
            Message(json: ["protocol": "discovery", "command": "participant",
                           "payload": ["id": "x", "role": "r", "component": "C", "inports": "nope", "outports": []]]),
            Message(json: ["protocol": "discovery", "command": "participant",
                           "payload": ["id": 5, "role": "r", "component": "C", "inports": [], "outports": []]]),
            Message(bytes: [UInt8](repeating: 0x7B, count: 2 << 20)),
            Message(bytes: [0xFF, 0xFE, 0x00]),
            Message(text: String(repeating: "[", count: 100_000)),
        ]
        for i in 0..<2000 { try await t.send(toInport: "fbp", garbage[i % garbage.count]) }
        try await t.announce(participant("ok-1", role: "ok"))
        #expect(await c.wait { $0.registry["ok-1"] != nil })
        #expect(await c.observation.rejected == 2000)
        #expect(await c.observation.registry.count == 1)
        #expect(broker.depth("fbp") == 0)
    }

    @Test func mqttStyleCommandsAreSentToCapableParticipants() async throws {
        let broker = InMemoryBroker()
        let t = InMemoryTransport(broker: broker, url: BrokerURL(scheme: .mqtt, host: "in-memory"))
        try await t.connect()
        let logger = testLogger(level: .critical)
        var options = CoordinatorOptions()
        options.answerStatus = false
        let c = Coordinator(transport: t, graph: Self.graph, options: options, logger: logger)
        let task = Task { try await c.run() }
        defer { task.cancel() }
        #expect(await c.wait { _ in broker.queueNames.contains("fbp") })
        let pt = InMemoryTransport(broker: broker)
        try await pt.connect()
        try await pt.declareInport("b.COMMANDS")
        let commands = try await pt.consume("b.COMMANDS")
        try await pt.announce(participant("a-1", role: "a"))
        try await pt.announce(participant("b-1", role: "b", commands: true))
        var it = commands.makeAsyncIterator()
        let got = try #require(await it.next())
        let cmd = try CoordinatorCommand(parsing: got.message)
        #expect(cmd.command == .connectInport)
        #expect(cmd.port == "in")
        #expect(cmd.queue == "a.OUT")
        #expect(await c.wait { $0.idle && $0.wiring.commands.count == 1 })
        #expect(await c.observation.wiring.bindings.isEmpty)
    }

    @Test func statusAnswersOnTheBroker() async throws {
        let broker = InMemoryBroker()
        let (c, task) = try await makeCoordinator(broker)
        defer { task.cancel() }
        _ = c
        let a = try await Repeater.start(broker, id: "a-1", role: "a")
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        #expect(await c.wait { $0.registry["a-1"] != nil && $0.idle })
        let s = try await StatusClient.ask(t, timeout: .seconds(2))
        let status = try #require(s)
        #expect(status.rows.map(\.role) == ["a", "b"])
        #expect(status.rows[0].participants.map(\.id) == ["a-1"])
        #expect(status.rows[1].participants.isEmpty)
        #expect(status.rows[0].queueDepths["a.IN"] == 0)
        #expect(!status.rows[1].pendingEdges.isEmpty)
        let table = status.table()
        #expect(table.contains("ROLE"))
        #expect(table.contains("pending"))
        await a.stop()
    }
}
