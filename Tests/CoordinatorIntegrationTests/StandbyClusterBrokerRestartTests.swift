import Foundation
import MsgFlo
import MsgFloCoordinator
import MsgFloTransports
import Synchronization
import TestSupport
import Testing

/// Standby coordinators (issue 15) on the three-node test cluster (`Scripts/brokers cluster`): two `msgflo --standby`
/// daemons, one active; `kill -9` of it, and the other takes over, starts the graph's participants again and wires
/// them. On the cluster, which no other test's daemon uses (their `msgflo.status` answers and `fbp` consumers would
/// mix with these), and in Scripts/test's serial pass (BrokerRestart in the name: it kills processes and nodes).
extension CoordinatorIntegration {
@Suite(.serialized) struct StandbyClusterBrokerRestartTests {
    let helpers = DaemonProcessTests()

    func elected(_ out: DaemonProcessTests.Output) -> Bool { out.value.contains("is the active coordinator") }

    @Test func standbyTakesOverWithinSecondsOfTheActivesKillOnTheClusterBrokerRestart() async throws {
        try await takeOver(broker: try await TestBrokers.clusterURL())
    }

    /// MQTT: retained claims with a last will (on the private Mosquitto; in the serial pass no other daemon runs).
    @Test func standbyTakesOverWithinSecondsOfTheActivesKillOnMQTTBrokerRestart() async throws {
        try await takeOver(broker: try TestBrokers.url(.mqtt))
    }

    /// Item 3 with the daemon: the daemon and the participants it started are connected to node 1 (the first
    /// address); kill -9 of node 1: the daemon and its participants go on on another node, messages sent afterwards
    /// all come through the graph (into a quorum sink), and the daemon still answers `msgflo status`.
    @Test func daemonsNodeKilledGraphKeepsFlowingBrokerRestart() async throws {
        let broker = try await TestBrokers.clusterURL(options: "queue-type=quorum")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-nodekill-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rep = TestBrokers.unique("nrep"), up = TestBrokers.unique("nup"), sink = TestBrokers.unique("nsink")
        try """
        'hello' -> IN \(rep)(Repeat)
        \(rep) OUT -> IN \(up)(Uppercase)
        """.write(to: dir.appendingPathComponent("graph.fbp"), atomically: true, encoding: .utf8)
        let lib = try helpers.library(in: dir)
        let t = try Transports.make(broker, logger: quietLogger(),
                                    timeouts: TransportTimeouts(connect: .seconds(20), operation: .seconds(30), reconnectWait: .seconds(120)))
        try await t.connect()
        try await t.declareOutport("\(up).OUT")
        try await t.declareInport(sink)
        try await t.addBinding(Binding(src: "\(up).OUT", tgt: sink))
        let seen = Mutex<Set<String>>([])
        let consumer = Task {
            for await d in try await t.consume(sink, options: ConsumeOptions(prefetch: 100)) {
                // Whatever JSON quoting the example adds, the letters count.
                if let text = d.message.text { seen.withLock { _ = $0.insert(text.filter { $0 != "\"" && $0 != "\\" }) } }
                d.ack()
            }
        }
        let (daemon, out) = try await helpers.startDaemon(["--graph", "graph.fbp", "--library", lib.path, "--log-level", "info"],
                                                    in: dir, broker: broker)
        defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
        #expect(await helpers.waitFor(.seconds(90)) { seen.withLock { $0.contains("HELLO") } },
                "\(out.value)")
        try await TestBrokers.script(["cluster", "kill", "1"])
        let total = 500
        for i in 0..<total { try await t.sendRouted(toInport: "\(rep).IN", Message(text: "m\(i)")) }
        #expect(await helpers.waitFor(.seconds(90)) { seen.withLock { s in (0..<total).allSatisfy { s.contains("M\($0)") } } },
                "\(seen.withLock { $0.count }) of \(total) through; \(out.value)")
        #expect(daemon.isRunning)
        let status = try await StatusClient.ask(t, timeout: .seconds(20))
        #expect(status != nil, "the daemon does not answer msgflo status after its node's death")
        kill(daemon.processIdentifier, SIGTERM)
        #expect(await helpers.waitFor { !daemon.isRunning }, "\(out.value)")
        consumer.cancel()
        await t.close()
        try await TestBrokers.script(["cluster", "revive", "1"])
    }

    func takeOver(broker: BrokerURL) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-standby-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rep = TestBrokers.unique("srep"), up = TestBrokers.unique("sup")
        try """
        'hello' -> IN \(rep)(Repeat)
        \(rep) OUT -> IN \(up)(Uppercase)
        """.write(to: dir.appendingPathComponent("graph.fbp"), atomically: true, encoding: .utf8)
        let lib = try helpers.library(in: dir)

        let t = try Transports.make(broker, logger: quietLogger())
        try await t.connect()
        try await t.declareOutport("\(up).OUT")
        let tap = try await Tap(t, "\(up).OUT")

        let args = ["--standby", "--graph", "graph.fbp", "--library", lib.path, "--log-level", "info"]
        let (first, out1) = try await helpers.startDaemon(args, in: dir, broker: broker)
        #expect(await helpers.waitFor(.seconds(60)) { elected(out1) }, "\(out1.value)")
        let (second, out2) = try await helpers.startDaemon(args, in: dir, broker: broker)
        defer {
            for p in [first, second] where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        #expect(await helpers.waitFor(.seconds(60)) { out2.value.contains("standby: another coordinator is active") }, "\(out2.value)")
        #expect(!elected(out2))
        // Only the active one starts participants: the graph's two, and the IIP comes out in capitals.
        #expect(await tap.wait(count: 1, timeout: .seconds(60)), "\(out1.value)")
        #expect(helpers.pids(out1.value).count == 2)
        #expect(helpers.pids(out2.value).isEmpty)

        // msgflo status names the active instance.
        let status = try await StatusClient.ask(t, timeout: .seconds(10))
        #expect(status?.active?.hasSuffix(":\(first.processIdentifier)") == true, "\(String(describing: status?.active))")
        #expect(status?.table().contains("active coordinator:") == true)

        let children = helpers.pids(out1.value)
        kill(first.processIdentifier, SIGKILL)
        let killed = ContinuousClock.now
        #expect(await helpers.waitFor(.seconds(30)) { elected(out2) }, "\(out2.value)")
        let takeover = ContinuousClock.now - killed
        // Its children died with it (PR_SET_PDEATHSIG); the new active one starts the graph's participants again,
        // rebuilds its registry from their announcements and wires them: the IIP goes through the new ones.
        #expect(await helpers.waitFor(.seconds(30)) { children.values.allSatisfy { kill($0, 0) != 0 } })
        #expect(await tap.wait(count: 2, timeout: .seconds(60)), "\(out2.value)")
        #expect(helpers.pids(out2.value).count == 2)
        let after = try await StatusClient.ask(t, timeout: .seconds(10))
        #expect(after?.active?.hasSuffix(":\(second.processIdentifier)") == true)
        print("standby takeover (\(broker.scheme.rawValue)): elected \(takeover) after kill -9 of the active coordinator")

        kill(second.processIdentifier, SIGTERM)
        #expect(await helpers.waitFor { !second.isRunning }, "\(out2.value)")
        #expect(!out1.value.contains("guest:guest") && !out2.value.contains("guest:guest"))
        tap.task.cancel()
        await tap.sub.cancel()
        await t.close()
    }
}
}
