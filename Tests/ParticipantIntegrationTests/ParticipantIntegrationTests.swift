import MsgFloTransports
import Logging
import ExampleParticipants
import Foundation
import MsgFlo
import MsgFloParticipant
import Synchronization
import TestSupport
import Testing

/// The SDK against the real brokers of `Scripts/brokers` (fails, never skips, without them). Serialized: the
/// tests share the `fbp` queue and restart brokers.
@Suite("Participant on real brokers", .serialized)
struct ParticipantIntegrationTests {
    @Test("the discovery message on fbp has the exact fields and the default queues", arguments: TestBrokers.Kind.allCases)
    func discovery(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let fbp = try await Announcements(on: t)
        let role = TestBrokers.unique("disc")
        let p = try await Examples.repeatParticipant.start(role: role, on: t, logger: testLogger())
        try await eventually("discovery of \(role)") { !fbp.of(role: role).isEmpty }
        let raw = try #require(fbp.collector.all.first { (try? Discovery.parse($0))?.role == role })
        let payload = try #require(raw.json?["payload"]?.objectValue)
        #expect(Set(payload.keys) == ["id", "role", "component", "label", "icon", "inports", "outports", "timestamp",
                                      "heartbeat", "inqueue", "capabilities"])
        let def = fbp.of(role: role)[0]
        #expect(def == p.definition)
        #expect(def.inports.map(\.queue) == ["\(role).IN"])
        #expect(def.outports.map(\.queue) == ["\(role).OUT"])
        #expect(def.component == "Repeat")
        #expect(def.supports(.connectInport) && def.supports(.disconnectOutport))
        await p.stop()
        await fbp.stop()
    }

    @Test("data sent to role.IN is repeated on role.OUT, bytes unchanged", arguments: TestBrokers.Kind.allCases)
    func repeats(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("rep")
        let p = try await Examples.repeatParticipant.start(role: role, on: t, logger: testLogger())
        let out = try await Collector.outport("\(role).OUT", on: t)
        let bodies = [Message(json: ["bar": "foo"]), Message(bytes: [0, 0xFF, 0xFE, 10]), Message(text: "plain"),
                      Message(bytes: Array(repeating: 0x41, count: 100_000))]
        for b in bodies { try await t.send(toInport: "\(role).IN", b) }
        let got = try await out.wait(for: bodies.count)
        #expect(Set(got) == Set(bodies))
        await out.stop()
        await p.stop()
    }

    @Test("several outputs per input (Split)", arguments: TestBrokers.Kind.allCases)
    func split(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("split")
        let p = try await Examples.split.start(role: role, on: t, options: ParticipantOptions(prefetch: 1), logger: testLogger())
        let out = try await Collector.outport("\(role).OUT", on: t)
        try await t.send(toInport: "\(role).IN", Message(json: [1, 2, 3, 4]))
        #expect(try await out.wait(for: 4).map(\.json) == [1, 2, 3, 4])
        await p.stop()
    }

    @Test("AMQP: a failure goes to the error port and the message is dead-lettered to dead-<queue>")
    func errorPortAndDeadLetter() async throws {
        let t = try await connectedTransport(.amqp)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("up")
        let p = try await Examples.uppercase.start(role: role, on: t, logger: testLogger())
        let errors = try await Collector.outport("\(role).ERROR", on: t)
        let out = try await Collector.outport("\(role).OUT", on: t)
        let deadQueue = TestBrokers.unique("test.dead")
        try await t.declareInport(deadQueue, options: QueueOptions(persistent: false))
        try await t.addBinding(Binding(.deadLetter, src: "\(role).IN", tgt: deadQueue))
        let dead = Collector(try await t.consume(deadQueue))
        try await t.send(toInport: "\(role).IN", Message(json: ["not": "text"]))
        try await t.send(toInport: "\(role).IN", Message(json: "fine"))
        let e = try await errors.wait(for: 1)[0].json
        #expect(e?["inport"] == "in")
        #expect(e?["input"] == ["not": "text"])
        #expect(e?["message"]?.stringValue?.isEmpty == false)
        #expect(try await dead.wait(for: 1).map(\.json) == [["not": "text"]])
        #expect(try await out.wait(for: 1).map(\.json) == ["FINE"])
        try await eventually("IN drained") { try await t.queueDepth("\(role).IN") == 0 }
        await p.stop()
    }

    @Test("the executable: ready line, nothing on stderr before it, --iips delivered at start, SIGTERM exits 0",
          arguments: TestBrokers.Kind.allCases)
    func executableWithIIPs(kind: TestBrokers.Kind) async throws {
        let url = try TestBrokers.url(kind)
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("tick")
        let out = try await Collector.outport("\(role).OUT", on: t)
        let urlText = url.unredacted
        let child = try await Child(participantExecutable, ["Interval", role, "--iips", #"{"interval": 20}"#],
                              environment: ["MSGFLO_BROKER": urlText])
        let line = try await child.ready()
        #expect(line == "\(role)(Interval) connected to \(url)")
        #expect(!line.contains("guest:guest"))
        #expect(child.stderrBeforeReady == 0, "stderr before ready: \(child.stderr)")
        let got = try await out.wait(for: 3)
        #expect(got.prefix(3).compactMap(\.json?.intValue) == [0, 1, 2])
        child.terminate()
        #expect(try await child.exitCode() == 0)
        #expect(child.stdoutLines.count == 1)
    }

    @Test("the executable: bad arguments give one line on stderr and exit 1; an unreachable broker is waited for, a line per attempt, until --connect-timeout")
    func executableErrors() async throws {
        for args in [["Repeat"], ["Nope", "x"], ["Repeat", "r", "--iips", "{"], ["Repeat", "r", "--prefetch", "0"],
                     ["Repeat", "r", "--connect-timeout", "0"], ["Repeat", String(repeating: "r", count: 300)]] {
            let child = try await Child(participantExecutable, args)
            #expect(try await child.exitCode(timeout: .seconds(30)) == 1, "\(args)")
            let lines = child.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(child.stderr)")
            #expect(child.stdout.isEmpty)
        }
        for url in ["amqp://127.0.0.1:1/", "mqtt://127.0.0.1:1", "amqp://u:secret@127.0.0.1:1/"] {
            let child = try await Child(participantExecutable, ["Repeat", "r", "--broker", url, "--connect-timeout", "1.5"])
            #expect(try await child.exitCode(timeout: .seconds(30)) == 1, "\(url)")
            let lines = child.stderr.split(separator: "\n")
            #expect(lines.count >= 2, "\(url): \(child.stderr)")
            #expect(lines.dropLast().allSatisfy { $0.contains("waiting for the broker (attempt") }, "\(url): \(child.stderr)")
            #expect(lines.last?.contains("gave up after") == true, "\(url): \(child.stderr)")
            #expect(child.stdout.isEmpty)
            #expect(!child.stderr.contains("secret"))
        }
    }

    @Test("connectinport adds a source, disconnect removes it, and both survive a broker restart",
          .timeLimit(.minutes(4)), arguments: TestBrokers.Kind.allCases)
    func connectInportSurvivesBrokerRestart(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        let observer = try await connectedTransport(kind)
        defer { Task { await t.close(); await observer.close() } }
        let role = TestBrokers.unique("rep")
        let source = TestBrokers.unique("src") + ".OUT"
        let p = try await Examples.repeatParticipant.start(role: role, on: t, logger: testLogger())
        let out = try await Collector.outport("\(role).OUT", on: observer)
        try await observer.declareOutport(source)
        let inqueue = try #require(p.definition.inqueue)
        try await observer.send(toInport: inqueue, CoordinatorCommand(.connectInport, port: "in", queue: source).message)
        try await eventually("connected") { p.connectedInports["in"] == [source] }

        /// Sends on the source until something arrives (MQTT QoS 0 drops what is sent while a client reconnects).
        func flows(_ tag: String) async throws {
            let before = out.count
            try await eventually("data through \(source) (\(tag))", timeout: .seconds(30)) {
                try? await observer.send(toOutport: source, Message(json: .string(tag)))
                try await Task.sleep(for: .milliseconds(200))
                return out.all.dropFirst(before).contains { $0.json == .string(tag) }
            }
        }
        try await flows("before")
        let announced = p.announcements
        try await restartBroker(kind)
        try await eventually("announced again after the restart", timeout: .seconds(40)) { p.announcements > announced }
        try await flows("after restart")
        #expect(p.connectedInports["in"] == [source])

        try await observer.send(toInport: inqueue, CoordinatorCommand(.disconnectInport, port: "in", queue: source).message)
        try await eventually("disconnected", timeout: .seconds(20)) { p.connectedInports.isEmpty }
        try await Task.sleep(for: .milliseconds(300))
        let n = out.count
        try await observer.send(toOutport: source, Message(json: "after disconnect"))
        try await Task.sleep(for: .milliseconds(500))
        #expect(out.count == n)
        await p.stop()
    }

    @Test("connectoutport sends to another queue as well", arguments: TestBrokers.Kind.allCases)
    func connectOutport(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("rep")
        let other = TestBrokers.unique("other") + ".IN"
        let extra = try await Collector.queue(other, on: t, persistent: false)
        let p = try await Examples.repeatParticipant.start(role: role, on: t, logger: testLogger())
        try await t.send(toInport: p.definition.inqueue!, CoordinatorCommand(.connectOutport, port: "out", queue: other).message)
        try await eventually("connected") { p.connectedOutports["out"] == [other] }
        try await t.send(toInport: "\(role).IN", Message(json: "x"))
        #expect(try await extra.wait(for: 1).map(\.json) == ["x"])
        await p.stop()
    }

    @Test("the heartbeat period is kept", arguments: TestBrokers.Kind.allCases)
    func heartbeat(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let fbp = try await Announcements(on: t)
        let role = TestBrokers.unique("hb")
        let p = try await Examples.repeatParticipant.start(role: role, on: t, options: ParticipantOptions(discoveryPeriod: 1.1), logger: testLogger())
        try await eventually("first announcement") { !fbp.of(role: role).isEmpty }
        let start = ContinuousClock.now
        // Every 1.1 / 2.2 = 0.5 s. They must keep coming, and never faster than that. (A loaded machine only makes
        // the gaps longer, and on AMQP another consumer of `fbp` may take some of them, so no upper bound on gaps.)
        try await eventually("4 more announcements", timeout: .seconds(30)) { fbp.of(role: role).count >= 5 }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(1800), "4 announcements after only \(elapsed): faster than every 0.5 s")
        #expect(fbp.of(role: role).allSatisfy { $0.heartbeat == 1.1 && $0.id == p.definition.id })
        await p.stop()
        await fbp.stop()
    }

    @Test("AMQP: SIGTERM with messages in flight loses none", .timeLimit(.minutes(2)))
    func sigtermLosesNothing() async throws {
        let t = try await connectedTransport(.amqp)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("term")
        let out = try await Collector.outport("\(role).OUT", on: t)
        let child = try await Child(participantExecutable, ["Repeat", role, "--broker", try TestBrokers.url(.amqp).unredacted, "--prefetch", "50"])
        _ = try await child.ready()
        let n = 3000
        for i in 0..<n { try await t.send(toInport: "\(role).IN", Message(json: .int(i))) }
        try await eventually("some through") { out.count > 100 }
        child.terminate()
        #expect(try await child.exitCode() == 0)
        let seenBeforeRestart = out.count
        // What was not handled is still in the queue: a new process takes it.
        let again = try await Child(participantExecutable, ["Repeat", role, "--broker", try TestBrokers.url(.amqp).unredacted])
        _ = try await again.ready()
        try await eventually("every message out", timeout: .seconds(60)) { Set(out.all.compactMap(\.json?.intValue)).count == n }
        again.terminate()
        #expect(try await again.exitCode() == 0)
        #expect(seenBeforeRestart < n, "the first process had finished before SIGTERM: nothing was in flight")
        let dupes = out.count - n
        #expect(dupes == 0, "\(dupes) duplicates")
    }

    /// The MQTT URL, a QoS 1 transport of the test's own (its own session), a fresh role and a collector on its outport.
    func mqttQoS1Setup(_ prefix: String) async throws -> (String, any Transport, String, Collector) {
        let base = try TestBrokers.url(.mqtt).unredacted
        let logger = testLogger("test.mqtt")
        let t = try Transports.make(try BrokerURL(parsing: base + "?qos=1&clientId=\(TestBrokers.unique("msgflo-test-\(prefix)"))"),
                                    logger: logger)
        try await t.connect()
        let role = TestBrokers.unique(prefix)
        return (base, t, role, try await Collector.outport("\(role).OUT", on: t))
    }

    @Test("MQTT QoS 1: SIGTERM with messages in flight loses none", .timeLimit(.minutes(2)))
    func mqttSigtermLosesNothing() async throws {
        let (base, t, role, out) = try await mqttQoS1Setup("mterm")
        defer { Task { await t.close() } }
        // The same command line both times: the same persistent session, which keeps what arrives in between.
        let args = ["Repeat", role, "--broker", base + "?qos=1", "--prefetch", "20"]
        let child = try await Child(participantExecutable, args)
        _ = try await child.ready()
        let n = 3000
        for i in 0..<n { try await t.send(toInport: "\(role).IN", Message(json: .int(i))) }
        try await eventually("some through") { out.count > 100 }
        child.terminate()
        #expect(try await child.exitCode() == 0)
        let seenBeforeRestart = out.count
        let again = try await Child(participantExecutable, args)
        _ = try await again.ready()
        try await eventually("every message out", timeout: .seconds(60)) { Set(out.all.compactMap(\.json?.intValue)).count == n }
        again.terminate()
        #expect(try await again.exitCode() == 0)
        #expect(seenBeforeRestart < n, "the first process had finished before SIGTERM: nothing was in flight")
        let dupes = out.count - n
        #expect(dupes == 0, "\(dupes) duplicates")
    }

    @Test("MQTT QoS 1: kill -9 loses at most the participant's window (prefetch + 1)", .timeLimit(.minutes(2)))
    func mqttKillLosesAtMostTheWindow() async throws {
        let (base, t, role, out) = try await mqttQoS1Setup("mkill")
        defer { Task { await t.close() } }
        let prefetch = 4
        let args = ["Repeat", role, "--broker", base + "?qos=1", "--prefetch", "\(prefetch)"]
        let n = 3000
        let child = try await Child(participantExecutable, args)
        _ = try await child.ready()
        for i in 0..<n { try await t.send(toInport: "\(role).IN", Message(json: .int(i))) }
        try await eventually("some through") { out.count > 300 }
        kill(child.process.processIdentifier, SIGKILL)
        _ = try? await child.exitCode()
        #expect(out.count < n, "the participant had finished before kill -9")
        let again = try await Child(participantExecutable, args)
        _ = try await again.ready()
        // Everything the broker still had arrives; what was in hand at the kill may be gone.
        let window = prefetch + 1
        try await eventually("all but the window", timeout: .seconds(60)) {
            Set(out.all.compactMap(\.json?.intValue)).count >= n - window
        }
        try await Task.sleep(for: .seconds(1))
        let lost = n - Set(out.all.compactMap(\.json?.intValue)).count
        again.terminate()
        #expect(try await again.exitCode() == 0)
        #expect(lost <= window, "lost \(lost), more than the window of \(window)")
    }

    @Test("several participants in one process on one connection", arguments: TestBrokers.Kind.allCases)
    func several(kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let a = TestBrokers.unique("a"), b = TestBrokers.unique("b")
        let pa = try await Examples.uppercase.start(role: a, on: t, options: ParticipantOptions(queues: ["out": "\(b).IN"]), logger: testLogger())
        let pb = try await Examples.repeatParticipant.start(role: b, on: t, logger: testLogger())
        let out = try await Collector.outport("\(b).OUT", on: t)
        try await t.send(toInport: "\(a).IN", Message(json: "shout"))
        #expect(try await out.wait(for: 1).map(\.json) == ["SHOUT"])
        await pa.stop()
        await pb.stop()
    }

    @Test("MQTT interop: a Swift participant and a msgflo-python participant exchange messages both ways",
          .timeLimit(.minutes(2)))
    func pythonInterop() async throws {
        let python = TestBrokers.packageRoot.appendingPathComponent(".venv/bin/python")
        #expect(FileManager.default.isExecutableFile(atPath: python.path), "no .venv: run Scripts/bootstrap")
        let url = try TestBrokers.url(.mqtt)
        let t = try await connectedTransport(.mqtt)
        defer { Task { await t.close() } }
        let fbp = try await Announcements(on: t)
        let pyRole = TestBrokers.unique("py")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(pyRole).py")
        try """
        import sys, msgflo
        class Repeat(msgflo.Participant):
            def __init__(self, role):
                d = {'component': 'PythonRepeat', 'label': 'repeats', 'icon': 'file',
                     'inports': [{'id': 'in', 'type': 'any'}], 'outports': [{'id': 'out', 'type': 'any'}]}
                msgflo.Participant.__init__(self, d, role)
            def process(self, inport, msg):
                self.send('out', msg.data)
                self.ack(msg)
        if __name__ == '__main__':
            msgflo.main(Repeat, sys.argv[1])  # msgflo.main takes argv[0], the script, as the role
        """.write(to: file, atomically: true, encoding: .utf8)
        let py = try await Child(python, [file.path, pyRole], environment: ["MSGFLO_BROKER": "mqtt://\(url.host):\(url.port)"])
        defer { kill(py.process.processIdentifier, SIGKILL) }
        try await eventually("the python participant's discovery", timeout: .seconds(30)) { !fbp.of(role: pyRole).isEmpty }
        let pyDef = fbp.of(role: pyRole)[0]
        let pyIn = try #require(pyDef.inport("in")?.queue), pyOut = try #require(pyDef.outport("out")?.queue)
        #expect(pyIn == "\(pyRole)/in")

        // test → Swift (sw) → [edge sw.OUT → python in] → python → Swift (sw2, consuming python's out) → test
        let sw = TestBrokers.unique("sw"), sw2 = TestBrokers.unique("sw2")
        let p1 = try await Examples.repeatParticipant.start(role: sw, on: t, logger: testLogger())
        let p2 = try await Examples.uppercase.start(role: sw2, on: t, options: ParticipantOptions(queues: ["in": pyOut]), logger: testLogger())
        try await p1.apply(CoordinatorCommand(.connectOutport, port: "out", queue: pyIn))
        let out = try await Collector.outport("\(sw2).OUT", on: t)
        let fromPy = try await Collector.outport(pyOut, on: t)
        try await eventually("a round trip", timeout: .seconds(30)) {
            try await t.send(toInport: "\(sw).IN", Message(json: "ping"))
            try await Task.sleep(for: .milliseconds(500))
            return out.count > 0
        }
        #expect(out.all[0].json == "PING")
        #expect(fromPy.all.first?.json == "ping")
        await p1.stop()
        await p2.stop()
        // msgflo-python has no graceful stop (its gevent loop does not end on SIGTERM): kill it.
        kill(py.process.processIdentifier, SIGKILL)
        await fbp.stop()
    }
}
