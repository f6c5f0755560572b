import ExampleParticipants
import MsgFlo
import MsgFloParticipant
import ServiceLifecycle
import Logging
import Synchronization
import TestSupport
import Testing

@Suite("Participant on the in-memory transport")
struct ParticipantTests {
    @Test("the discovery message has msgflo's fields, the extensions and the default queues role.IN / role.OUT")
    func discovery() async throws {
        let t = try await connected()
        let fbp = try await Collector.queue("fbp", on: t)
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let msgs = try await fbp.wait(for: 1)
        let env = try #require(msgs[0].json)
        #expect(env["protocol"] == "discovery")
        #expect(env["command"] == "participant")
        let payload = try #require(env["payload"]?.objectValue)
        #expect(Set(payload.keys) == ["id", "role", "component", "label", "icon", "inports", "outports", "timestamp",
                                      "heartbeat", "inqueue", "capabilities"])
        #expect(payload["role"] == "rep")
        #expect(payload["component"] == "Repeat")
        #expect(payload["label"] == "Repeats its input unchanged")
        #expect(payload["icon"] == "forward")
        #expect(payload["id"]?.stringValue?.hasPrefix("rep-") == true)
        // <role>-<8 hex digits>, zero padded
        let suffix = payload["id"]?.stringValue?.dropFirst(4) ?? ""
        #expect(suffix.count == 8 && suffix.allSatisfy(\.isHexDigit), "\(payload["id"] ?? .null)")
        #expect(payload["heartbeat"] == 60)
        #expect(payload["inqueue"] == .string(payload["id"]!.stringValue! + ".MSGFLO"))
        #expect(payload["capabilities"] == ["connectinport", "connectoutport", "disconnectinport", "disconnectoutport", "pause", "resume"])
        #expect(payload["inports"]?.arrayValue?.count == 1)
        let def = try Discovery.parse(msgs[0])
        #expect(def.inports.map(\.id) == ["in"])
        #expect(def.inports.map(\.queue) == ["rep.IN"])
        #expect(def.outports.map(\.queue) == ["rep.OUT"])
        #expect(def.inports[0].type == "any")
        #expect(def.inports[0].description == "anything")
        #expect(def == p.definition)
        await p.stop()
    }

    @Test("hidden ports are left out of discovery; an explicit queue wins; role case is kept")
    func hiddenAndExplicit() async throws {
        let t = try await connected()
        let fbp = try await Collector.queue("fbp", on: t)
        let part = Participant(component: "X", inports: [Port("in", queue: "/house/light/1"), Port("tick", hidden: true)],
                               outports: ["out", Port("log", hidden: true)])
        let p = try await part.start(role: "MyRole", on: t, options: ParticipantOptions(queues: ["out": "elsewhere"]), logger: testLogger())
        let def = try Discovery.parse(try await fbp.wait(for: 1)[0])
        #expect(def.inports.map(\.queue) == ["/house/light/1"])
        #expect(def.outports.map(\.queue) == ["elsewhere"])
        #expect(p.definition.inport("tick")?.queue == nil)
        // Sending on a hidden outport does nothing and does not fail.
        try await p.context.send("log", "x")
        await p.stop()
        let q = try await part.start(role: "MyRole", on: t, logger: testLogger())
        #expect(q.definition.outport("out")?.queue == "MyRole.OUT")
        await q.stop()
    }

    @Test("data sent to role.IN comes out on role.OUT unchanged, and is acknowledged")
    func repeatsData() async throws {
        let t = try await connected()
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let out = try await Collector.outport("rep.OUT", on: t)
        let bodies: [Message] = [Message(json: ["bar": "foo"]), Message(text: "not json"), Message(bytes: [0, 255, 1]), Message(bytes: [])]
        for b in bodies { try await t.send(toInport: "rep.IN", b) }
        let got = try await out.wait(for: bodies.count)
        #expect(Set(got) == Set(bodies))
        try await eventually("all acknowledged") { t.memory.depth("rep.IN") == 0 && p.inFlight == 0 }
        await p.stop()
    }

    @Test("a handler may send several messages per input (Split)")
    func severalOutputs() async throws {
        let t = try await connected()
        let p = try await Examples.split.start(role: "split", on: t, logger: testLogger())
        let out = try await Collector.outport("split.OUT", on: t)
        try await t.send(toInport: "split.IN", Message(json: ["a", 1, ["b": true]]))
        let got = try await out.wait(for: 3)
        #expect(got.map(\.json) == ["a", 1, ["b": true]])
        try await t.send(toInport: "split.IN", Message(json: "hello wide world"))
        #expect(try await out.wait(for: 6).suffix(3).map(\.json) == ["hello", "wide", "world"])
        await p.stop()
    }

    @Test("sending JSON, text and raw bytes from a handler")
    func sendKinds() async throws {
        let t = try await connected()
        let part = Participant(component: "Kinds", inports: ["in"], outports: ["out"]) { _, _, ctx in
            try await ctx.send("out", ["k": 1])
            try await ctx.send("out", text: "plain")
            try await ctx.send("out", bytes: [0xFF, 0x00])
        }
        let p = try await part.start(role: "k", on: t, logger: testLogger())
        let out = try await Collector.outport("k.OUT", on: t)
        try await t.send(toInport: "k.IN", Message(json: nil))
        let got = try await out.wait(for: 3)
        #expect(got.map(\.bytes) == [Array(#"{"k":1}"#.utf8), Array("plain".utf8), [0xFF, 0x00]])
        await p.stop()
    }

    @Test("a failing handler: the error goes to the error outport and the message is dead-lettered")
    func errorPort() async throws {
        let t = try await connected()
        let p = try await Examples.uppercase.start(role: "up", on: t, logger: testLogger())
        let out = try await Collector.outport("up.OUT", on: t)
        let errors = try await Collector.outport("up.ERROR", on: t)
        try await t.declareInport("up.dead")
        try await t.addBinding(Binding(.deadLetter, src: "up.IN", tgt: "up.dead"))
        let dead = Collector(try await t.consume("up.dead"))
        try await t.send(toInport: "up.IN", Message(json: 42))
        try await t.send(toInport: "up.IN", Message(json: "ok"))
        let e = try await errors.wait(for: 1)[0].json
        #expect(e?["message"]?.stringValue?.contains("Uppercase takes text") == true)
        #expect(e?["inport"] == "in")
        #expect(e?["input"] == 42)
        #expect(try await dead.wait(for: 1).map(\.json) == [42])
        #expect(try await out.wait(for: 1).map(\.json) == ["OK"])
        await p.stop()
    }

    @Test("nack() dead-letters without an error port; throwing without an error port dead-letters too")
    func nackWithoutErrorPort() async throws {
        let t = try await connected()
        let part = Participant(component: "N", inports: ["in"], outports: ["out"]) { _, msg, ctx in
            if msg.json == "nack" { ctx.nack(); return }
            if msg.json == "throw" { throw MsgFloError(.invalidMessage, "no") }
            try await ctx.send("out", msg)
        }
        let p = try await part.start(role: "n", on: t, logger: testLogger())
        try await t.declareInport("n.dead")
        try await t.addBinding(Binding(.deadLetter, src: "n.IN", tgt: "n.dead"))
        let dead = Collector(try await t.consume("n.dead"))
        let out = try await Collector.outport("n.OUT", on: t)
        for m: JSONValue in ["nack", "throw", "fine"] { try await t.send(toInport: "n.IN", Message(json: m)) }
        #expect(Set(try await dead.wait(for: 2).map(\.json)) == ["nack", "throw"])
        #expect(try await out.wait(for: 1).map(\.json) == ["fine"])
        await p.stop()
    }

    @Test("IIPs are delivered at start: Interval configured by IIP sends a counter, 0 stops it")
    func iips() async throws {
        let t = try await connected()
        let p = try await Examples.interval.start(role: "tick", on: t, options: ParticipantOptions(iips: ["interval": 10]), logger: testLogger())
        let out = try await Collector.outport("tick.OUT", on: t)
        let got = try await out.wait(for: 3)
        #expect(Array(got.prefix(3).compactMap(\.json?.intValue)) == Array(got.prefix(3).indices))
        try await t.send(toInport: "tick.INTERVAL", Message(json: 0))
        // Stopped: no new tick for 200 ms (20 periods), however long the 0 took to arrive on a busy machine; then
        // none for 300 ms more.
        var last = out.count
        try await eventually("the ticks to stop") {
            try await Task.sleep(for: .milliseconds(200))
            defer { last = out.count }
            return out.count == last
        }
        let n = out.count
        try await Task.sleep(for: .milliseconds(300))
        #expect(out.count == n)
        await p.stop()
    }

    @Test("an IIP for a port the participant lacks is refused at start")
    func badIIP() async throws {
        let t = try await connected()
        await #expect(throws: MsgFloError.self) {
            _ = try await Examples.repeatParticipant.start(role: "r", on: t, options: ParticipantOptions(iips: ["nope": 1]), logger: testLogger())
        }
    }

    @Test("state is kept between messages (Count)")
    func count() async throws {
        let t = try await connected()
        let p = try await Examples.count().start(role: "c", on: t, options: ParticipantOptions(prefetch: 1), logger: testLogger())
        let out = try await Collector.outport("c.COUNT", on: t)
        for _ in 0..<3 { try await t.send(toInport: "c.IN", Message(json: "x")) }
        #expect(try await out.wait(for: 3).map(\.json) == [1, 2, 3])
        await p.stop()
    }

    @Test("handlers run concurrently up to the prefetch, never more")
    func concurrency() async throws {
        let t = try await connected()
        let now = Mutex((current: 0, most: 0))
        let gate = Gate()
        let part = Participant(component: "Slow", inports: ["in"], outports: ["out"]) { _, msg, ctx in
            now.withLock { $0.current += 1; $0.most = max($0.most, $0.current) }
            await gate.wait()
            now.withLock { $0.current -= 1 }
            try await ctx.send("out", msg)
        }
        let p = try await part.start(role: "slow", on: t, options: ParticipantOptions(prefetch: 3), logger: testLogger())
        let out = try await Collector.outport("slow.OUT", on: t)
        for i in 0..<10 { try await t.send(toInport: "slow.IN", Message(json: .int(i))) }
        try await eventually("3 in flight") { now.withLock { $0.current } == 3 }
        try await Task.sleep(for: .milliseconds(30))
        #expect(now.withLock { $0.most } == 3)
        gate.open()
        #expect(try await out.wait(for: 10).count == 10)
        #expect(now.withLock { $0.most } == 3)
        await p.stop()
    }

    @Test("connectinport (AMQP: a binding) adds a source, idempotently; disconnectinport removes it")
    func connectInportAMQP() async throws {
        let t = try await connected()
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let out = try await Collector.outport("rep.OUT", on: t)
        try await t.declareOutport("src.OUT")
        let inqueue = try #require(p.definition.inqueue)
        let connect = CoordinatorCommand(.connectInport, port: "in", queue: "src.OUT")
        try await t.send(toInport: inqueue, connect.message)
        try await t.send(toInport: inqueue, connect.message)
        try await eventually("connected") { p.connectedInports["in"] == ["src.OUT"] }
        try await t.send(toOutport: "src.OUT", Message(json: "via edge"))
        #expect(try await out.wait(for: 1).map(\.json) == ["via edge"])
        try await Task.sleep(for: .milliseconds(30))
        #expect(out.count == 1) // connected twice, delivered once

        try await t.send(toInport: inqueue, CoordinatorCommand(.disconnectInport, port: "in", queue: "src.OUT").message)
        try await eventually("disconnected") { p.connectedInports.isEmpty }
        try await t.send(toOutport: "src.OUT", Message(json: "after"))
        try await Task.sleep(for: .milliseconds(50))
        #expect(out.count == 1)
        await p.stop()
    }

    @Test("connectinport on a broker without bindings (MQTT) consumes the source topic as well")
    func connectInportMQTT() async throws {
        let t = try await connected(scheme: .mqtt)
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let out = try await Collector.outport("rep.OUT", on: t)
        try await p.apply(CoordinatorCommand(.connectInport, port: "in", queue: "src/out"))
        try await p.apply(CoordinatorCommand(.connectInport, port: "in", queue: "src/out"))
        try await t.send(toInport: "src/out", Message(json: 1))
        #expect(try await out.wait(for: 1).map(\.json) == [1])
        try await p.apply(CoordinatorCommand(.disconnectInport, port: "in", queue: "src/out"))
        try await p.apply(CoordinatorCommand(.disconnectInport, port: "in", queue: "src/out"))
        try await t.send(toInport: "src/out", Message(json: 2))
        try await Task.sleep(for: .milliseconds(50))
        #expect(out.count == 1)
        #expect(t.memory.depth("src/out") == 1) // nobody takes it any more
        await p.stop()
    }

    @Test("connectoutport sends an outport's messages to another queue as well; disconnect undoes it")
    func connectOutport() async throws {
        let t = try await connected()
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let extra = try await Collector.queue("other.IN", on: t)
        let out = try await Collector.outport("rep.OUT", on: t)
        let c = CoordinatorCommand(.connectOutport, port: "out", queue: "other.IN")
        try await p.apply(c)
        try await p.apply(c)
        try await t.send(toInport: "rep.IN", Message(json: "a"))
        #expect(try await extra.wait(for: 1).map(\.json) == ["a"])
        #expect(try await out.wait(for: 1).map(\.json) == ["a"])
        try await p.apply(CoordinatorCommand(.disconnectOutport, port: "out", queue: "other.IN"))
        try await t.send(toInport: "rep.IN", Message(json: "b"))
        try await out.wait(for: 2)
        try await Task.sleep(for: .milliseconds(30))
        #expect(extra.count == 1)
        await #expect(throws: MsgFloError.self) { try await p.apply(CoordinatorCommand(.connectOutport, port: "nope", queue: "x")) }
        await p.stop()
    }

    @Test("pause holds deliveries (unacknowledged, the rest in the queue) until resume; nothing is lost")
    func pauseAndResume() async throws {
        let t = try await connected()
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let inqueue = try #require(p.definition.inqueue)
        let out = try await Collector.outport("rep.OUT", on: t)
        try await t.send(toInport: inqueue, Message(json: ["protocol": "msgflo", "command": "pause", "payload": ["graph": "g"]]))
        try await eventually("paused") { p.isPaused }
        for i in 0..<5 { try await t.send(toInport: "rep.IN", Message(json: .int(i))) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(out.count == 0)
        // Pausing twice is pausing.
        try await t.send(toInport: inqueue, Message(json: ["protocol": "msgflo", "command": "pause", "payload": [:]]))
        try await t.send(toInport: inqueue, Message(json: ["protocol": "msgflo", "command": "resume", "payload": ["graph": "g"]]))
        // Two handlers (prefetch 2) are released together: each message once, in no promised order.
        #expect(try await out.wait(for: 5).compactMap(\.json?.intValue).sorted() == [0, 1, 2, 3, 4])
        #expect(!p.isPaused)
        #expect(t.memory.depth("rep.IN") == 0)
        // A paused participant still stops.
        p.setPaused(true)
        try await t.send(toInport: "rep.IN", Message(json: 9))
        await p.stop()
    }

    @Test("garbage on the command queue is logged and acknowledged; the participant goes on")
    func garbageCommands() async throws {
        let t = try await connected()
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let inqueue = try #require(p.definition.inqueue)
        for g in [Message(text: "{"), Message(json: ["protocol": "msgflo", "command": "explode", "payload": [:]]), Message(bytes: [0xFF])] {
            try await t.send(toInport: inqueue, g)
        }
        try await eventually("command queue drained") { t.memory.depth(inqueue) == 0 }
        let out = try await Collector.outport("rep.OUT", on: t)
        try await t.send(toInport: "rep.IN", Message(json: 1))
        try await out.wait(for: 1)
        await p.stop()
    }

    @Test("after a connection loss it announces again and keeps its coordinator connections")
    func survivesConnectionLoss() async throws {
        let t = try await connected()
        let fbp = try await Collector.queue("fbp", on: t)
        let p = try await Examples.repeatParticipant.start(role: "rep", on: t, logger: testLogger())
        let out = try await Collector.outport("rep.OUT", on: t)
        let extra = try await Collector.queue("other.IN", on: t)
        try await t.declareOutport("src.OUT")
        try await p.apply(CoordinatorCommand(.connectInport, port: "in", queue: "src.OUT"))
        try await p.apply(CoordinatorCommand(.connectOutport, port: "out", queue: "other.IN"))
        try await fbp.wait(for: 1)
        t.simulateConnectionLoss()
        try await fbp.wait(for: 2)
        #expect(try Discovery.parse(fbp.all[1]) == p.definition)
        try await t.send(toOutport: "src.OUT", Message(json: "still"))
        #expect(try await out.wait(for: 1).map(\.json) == ["still"])
        #expect(try await extra.wait(for: 1).map(\.json) == ["still"])
        #expect(p.connectedInports == ["in": ["src.OUT"]])
        await p.stop()
    }

    @Test("the heartbeat period is kept: announcements every period / 2.2 s, and `heartbeat` says the period")
    func heartbeat() async throws {
        let t = try await connected()
        let fbp = try await Collector.queue("fbp", on: t)
        let clock = ContinuousClock()
        let start = clock.now
        let p = try await Examples.repeatParticipant.start(role: "hb", on: t, options: ParticipantOptions(discoveryPeriod: 0.22), logger: testLogger())
        // One at start, then one every 0.22 / 2.2 = 0.1 s. A loaded machine can only make the gaps longer, so the
        // check is that they keep coming and never come faster than the period says.
        try await eventually("6 announcements", timeout: .seconds(20)) { fbp.count >= 6 }
        let elapsed = clock.now - start
        #expect(elapsed >= .milliseconds(450), "6 announcements after only \(elapsed): faster than every 0.1 s")
        #expect(try Discovery.parse(fbp.all[0]).heartbeat == 0.22)
        await p.stop()
        let n = fbp.count
        try await Task.sleep(for: .milliseconds(250))
        #expect(fbp.count == n, "announcements go on after stop")
    }

    @Test("graceful stop: no new message is taken, the ones in hand finish and are acknowledged, none is lost")
    func gracefulStop() async throws {
        let broker = InMemoryBroker()
        let t = try await connected(broker)
        let gate = Gate()
        let started = Mutex(0)
        let part = Participant(component: "Slow", inports: ["in"], outports: ["out"]) { _, msg, ctx in
            started.withLock { $0 += 1 }
            await gate.wait()
            try await ctx.send("out", msg)
        }
        let p = try await part.start(role: "slow", on: t, options: ParticipantOptions(prefetch: 2), logger: testLogger())
        let observer = try await connected(broker)
        let out = try await Collector.outport("slow.OUT", on: observer)
        for i in 0..<5 { try await observer.send(toInport: "slow.IN", Message(json: .int(i))) }
        try await eventually("2 in hand") { started.withLock { $0 } == 2 }
        let stopping = Task { await p.stop(cancelSubscriptions: false); await t.close() }
        try await Task.sleep(for: .milliseconds(30))
        gate.open()
        await stopping.value
        #expect(started.withLock { $0 } == 2, "took a message after stop began")
        // Both in hand finished (in either order: with prefetch 2 they run concurrently).
        #expect(Set(try await out.wait(for: 2).compactMap(\.json)) == [0, 1])
        // The 3 others are back in the queue, none acknowledged nor lost.
        #expect(broker.depth("slow.IN") == 3)
        let again = try await part.start(role: "slow", on: observer, logger: testLogger())
        #expect(try await out.wait(for: 5).count == 5)
        await again.stop()
    }

    @Test("several participants share one transport and process")
    func several() async throws {
        let t = try await connected()
        let fbp = try await Collector.queue("fbp", on: t)
        let a = try await Examples.uppercase.start(role: "a", on: t, logger: testLogger())
        let b = try await Examples.repeatParticipant.start(role: "b", on: t, logger: testLogger())
        try await t.addBinding(Binding(src: "a.OUT", tgt: "b.IN"))
        let out = try await Collector.outport("b.OUT", on: t)
        try await t.send(toInport: "a.IN", Message(json: "chain"))
        #expect(try await out.wait(for: 1).map(\.json) == ["CHAIN"])
        try await fbp.wait(for: 2)
        #expect(Set(try fbp.all.map { try Discovery.parse($0).role }) == ["a", "b"])
        #expect(a.definition.id != b.definition.id && a.definition.inqueue != b.definition.inqueue)
        await a.stop()
        await b.stop()
    }

    @Test("a source with a run body sends on its own until stopped")
    func sourceBody() async throws {
        let t = try await connected()
        let src = Participant(component: "Src", outports: ["out"], run: { ctx in
            var i = 0
            while true {
                try await ctx.send("out", .int(i))
                i += 1
                try await Task.sleep(for: .milliseconds(5))
            }
        })
        let out = try await Collector.outport("s.OUT", on: t)
        let p = try await src.start(role: "s", on: t, logger: testLogger())
        try await out.wait(for: 3)
        await p.stop()
        let n = out.count
        try await Task.sleep(for: .milliseconds(50))
        #expect(out.count == n)
    }

    @Test("ParticipantService: runs participants, shuts down gracefully and closes the transport")
    func service() async throws {
        let broker = InMemoryBroker()
        let t = InMemoryTransport(broker: broker)
        let ready = Mutex<[String]>([])
        let service = ParticipantService(transport: t, participants: [(Examples.repeatParticipant, "r1"), (Examples.count(), "c1")],
                                         logger: testLogger(), onReady: { rs in ready.withLock { $0 = rs.map(\.role) } })
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [service], logger: testLogger()))
        let run = Task { try await group.run() }
        try await eventually("ready") { ready.withLock { $0 } == ["r1", "c1"] }
        let observer = try await connected(broker)
        let out = try await Collector.outport("r1.OUT", on: observer)
        try await observer.send(toInport: "r1.IN", Message(json: "x"))
        try await out.wait(for: 1)
        await group.triggerGracefulShutdown()
        try await run.value
        #expect(t.state == .closed)
    }

    @Test("ParticipantService fails when the transport closes underneath")
    func serviceTransportLost() async throws {
        let t = InMemoryTransport()
        let ready = Mutex(false)
        let service = ParticipantService(transport: t, participants: [(Examples.repeatParticipant, "r")],
                                         logger: testLogger(), onReady: { _ in ready.withLock { $0 = true } })
        let run = Task { try await service.run() }
        try await eventually("ready") { ready.withLock { $0 } }
        await t.close()
        await #expect(throws: MsgFloError.self) { try await run.value }
    }
}
