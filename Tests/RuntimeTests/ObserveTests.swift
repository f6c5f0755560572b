import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MsgFlo
import Synchronization
import TestSupport
import Testing

/// A participant process the test runs itself (so that it can kill it): `msgflo-participant COMPONENT ROLE`.
final class ParticipantProcess: Sendable {
    let process: TestProcess
    init(_ component: String, _ role: String, broker: BrokerURL, extra: [String] = []) async throws {
        process = try await TestProcess(builtExecutable("msgflo-participant").path,
                                        [component, role, "--broker", broker.unredacted, "--discovery-period", "2"] + extra,
                                        stdout: .discard, stderr: .discard)
    }
    func kill9() { process.signal(SIGKILL) }
    func stop() async { await process.stop() }
}

/// A daemon on a three-node graph `a(Repeat) -> b(Repeat) -> c(Drop)` with `in` exported (a.in; .fbp ports are
/// lowercase), its participants run
/// by the test.
struct ObservedNetwork {
    let daemon: Daemon
    let port: Int
    let dir: TempDir
    let roles: (a: String, b: String, c: String)
    let graphName: String
    var participants: [String: ParticipantProcess]
    let broker: BrokerURL

    static func start(_ kind: TestBrokers.Kind, extra: [String] = []) async throws -> ObservedNetwork {
        let broker = try TestBrokers.url(kind)
        let dir = try TempDir()
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let roles = (a: "oa\(tag)", b: "ob\(tag)", c: "oc\(tag)")
        let graph = """
        INPORT=\(roles.a).in:in
        \(roles.a)(Repeat) OUT -> IN \(roles.b)(Repeat)
        \(roles.b) OUT -> IN \(roles.c)(Drop)

        """
        try graph.write(toFile: dir.path("observed.fbp"), atomically: true, encoding: .utf8)
        let daemon = try await Daemon(["--graph", dir.path("observed.fbp")] + extra, broker: broker, in: dir)
        let port: Int
        do { port = try await daemon.port() } catch {
            await daemon.stop()
            dir.remove()
            throw error
        }
        var participants: [String: ParticipantProcess] = [:]
        for (c, r) in [("Repeat", roles.a), ("Repeat", roles.b), ("Drop", roles.c)] {
            participants[r] = try await ParticipantProcess(c, r, broker: broker)
        }
        return ObservedNetwork(daemon: daemon, port: port, dir: dir, roles: roles, graphName: "observed",
                               participants: participants, broker: broker)
    }

    func stop() async {
        for p in participants.values { await p.stop() }
        await daemon.stop()
        dir.remove()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func metrics() async throws -> [MetricSample] {
        let (status, body) = await httpGet(base + "/metrics")
        #expect(status == 200, "\(body.prefix(300))")
        return try PrometheusText.parse(body)
    }

    /// Waits until the daemon's data taps on both edges see messages (they are subscribed after the edges are wired,
    /// so /readyz may say ready a moment before): one message into the graph a second until both edge counters move.
    /// Returns the counters then, (a -> b, b -> c).
    func tapsLive() async throws -> (ab: Double, bc: Double) {
        var counts: (ab: Double, bc: Double) = (0, 0)
        try await eventually("the data taps counting on both edges", timeout: .seconds(60)) {
            try await send(1)
            try await Task.sleep(for: .seconds(1))
            let m = try await metrics()
            counts = (m.value("msgflo_edge_messages_total", ["src": "\(roles.a).out"]) ?? 0,
                      m.value("msgflo_edge_messages_total", ["src": "\(roles.b).out"]) ?? 0)
            return counts.ab > 0 && counts.bc > 0
        }
        // What was sent is counted before the next messages (a message a second, so nothing is left on its way
        // after a further second).
        try await Task.sleep(for: .seconds(1))
        let m = try await metrics()
        return (m.value("msgflo_edge_messages_total", ["src": "\(roles.a).out"]) ?? 0,
                m.value("msgflo_edge_messages_total", ["src": "\(roles.b).out"]) ?? 0)
    }

    /// Sends `count` messages into the exported inport over the runtime protocol (runtime:packet).
    func send(_ count: Int, graph: String? = nil) async throws {
        let c = WSClient(port: port)
        guard let name = await c.ask("runtime", "getruntime", reply: "runtime")?.payload["graph"]?.stringValue else {
            await c.close()
            throw WaitTimeout(description: "no runtime:runtime reply")
        }
        for i in 0..<count {
            // Each one's packetsent awaited: the client closes after the last, which could otherwise overtake them.
            let sent = await c.ask("runtime", "packet", ["port": "in", "event": "data", "graph": .string(graph ?? name),
                                                         "payload": ["n": .int(i), "text": "hello <b>&"]], reply: "packetsent")
            #expect(sent?.command == "packetsent", "\(String(describing: sent))")
        }
        await c.close()
    }
}

/// `/metrics`, `/healthz`, `/readyz` and the live view's JSON on a daemon (`msgflo --port`) over real brokers.
extension RuntimeDaemons {
@Suite(.serialized) struct DaemonObserveTests {
    @Test(arguments: TestBrokers.Kind.allCases)
    func metricsMoveAsParticipantsComeAndMessagesFlow(_ kind: TestBrokers.Kind) async throws {
        let net = try await ObservedNetwork.start(kind)
        do {
            #expect(await httpGet(net.base + "/healthz").status == 200)
            // Ready once the three participants are there and both edges are bound.
            try await eventually("readyz 200", timeout: .seconds(60)) { await httpGet(net.base + "/readyz").status == 200 }
            let ready = await httpGet(net.base + "/readyz")
            #expect(ready.body.contains("broker connected") && ready.body.contains("graph wired (2 edges)"), "\(ready.body)")

            var m = try await net.metrics()
            #expect(m.value("msgflo_participants", ["state": "alive"]) ?? 0 >= 3)
            #expect(m.value("msgflo_edges", ["state": "wired"]) == 2)
            #expect(m.value("msgflo_edges", ["state": "pending"]) == 0)
            #expect(m.value("msgflo_broker_connected") == 1)
            #expect(m.value("msgflo_discovery_messages_total") ?? 0 >= 3)
            // MQTT has no vhosts: the `fbp` topic is shared with every test of the run, some of which announce
            // malformed participants on purpose, so only AMQP (a vhost of its own) can promise none was rejected.
            if kind == .amqp { #expect(m.value("msgflo_discovery_rejected_total") == 0) }
            #expect(m.value("msgflo_reconcile_runs_total") ?? 0 >= 1)
            #expect(m.value("msgflo_reconcile_duration_seconds_count") ?? 0 >= 1)
            #expect(m.contains { $0.name == "msgflo_reconcile_duration_seconds_bucket" && $0.labels["le"] == "+Inf" })
            #expect(m.value("msgflo_broker_reconnects_total") == 0)

            // Messages on the edges: the data taps count them per edge.
            let before = try await net.tapsLive()
            try await net.send(5)
            let ab = ["src": "\(net.roles.a).out", "tgt": "\(net.roles.b).in"]
            var seen: (Double?, Double?) = (nil, nil)
            do { try await eventually("edge counters", timeout: .seconds(30)) {
                let m = try await net.metrics()
                seen = (m.value("msgflo_edge_messages_total", ab), m.value("msgflo_edge_messages_total", ["src": "\(net.roles.b).out"]))
                let (ab1, bc1) = (m.value("msgflo_edge_messages_total", ab) ?? 0, m.value("msgflo_edge_messages_total", ["src": "\(net.roles.b).out"]) ?? 0)
                // Exactly 5 on both brokers. (Once, in a loaded parallel run on AMQP, the taps counted 4 of the 5 on
                // both edges: the participants, announcing every 0.9 s with a 2 s heartbeat, were lost for a moment,
                // and the daemon dropped and remade the taps of the still wired edges; it keeps them now.)
                return ab1 == before.ab + 5 && bc1 == before.bc + 5
            } } catch {
                Issue.record("edge counters a->b, b->c: before \(before), last seen \(seen)")
                throw error
            }
            if kind == .amqp {
                // Depth is sampled every 10 s: a gauge per inport queue once sampled.
                try await eventually("queue depth gauges", timeout: .seconds(30)) {
                    try await net.metrics().contains { $0.name == "msgflo_queue_depth" && $0.labels["role"] == net.roles.c }
                }
            }

            // The live view's edge and node panels.
            let edge = await httpGet(net.base + "/live/edge?src=\(net.roles.a).out&tgt=\(net.roles.b).in")
            #expect(edge.status == 200, "\(edge.body)")
            let ej = try JSONValue(parsing: edge.body)
            #expect(ej["count"]?.doubleValue == seen.0 && ej["state"] == "wired", "\(edge.body)")
            #expect(ej["messages"]?.arrayValue?.last?["data"]?["text"] == "hello <b>&")
            #expect(await httpGet(net.base + "/live/edge?src=nope.OUT&tgt=x.IN").status == 404)
            let node = try JSONValue(parsing: await httpGet(net.base + "/live/node?role=\(net.roles.b)").body)
            #expect(node["processes"]?.arrayValue?.count == 1 && node["component"] == "Repeat")

            // A lost participant: the gauge moves, /readyz says what is pending, the log has a warning.
            net.participants[net.roles.c]!.kill9()
            try await eventually("lost in metrics", timeout: .seconds(30)) {
                try await net.metrics().value("msgflo_participants", ["state": "lost"]) ?? 0 >= 1
            }
            // (Its edges stay wired: the bindings are on the broker, messages wait in its queue for the next process.)
            m = try await net.metrics()
            #expect(m.value("msgflo_participants", ["state": "lost"]) ?? 0 >= 1)
            #expect(net.daemon.log.contains("warning msgflo: participant lost:"), "\(net.daemon.log.suffix(2000))")
        } catch {
            await net.stop()
            throw error
        }
        await net.stop()
    }

    /// `msgflo --log-format json`: every line on stderr that is a log line parses as one JSON object, with the
    /// participant's role in its metadata.
    @Test func daemonLogsJSONLines() async throws {
        let net = try await ObservedNetwork.start(.mqtt, extra: ["--log-format", "json"])
        do {
            try await eventually("participants seen", timeout: .seconds(30)) { net.daemon.log.contains("edge bound") }
            await net.daemon.stop()
            var logLines = 0
            var roles: Set<String> = []
            for line in net.daemon.log.split(separator: "\n") where line.hasPrefix("{") {
                let v = try JSONValue(parsing: String(line))
                #expect(v["time"]?.stringValue != nil && v["level"]?.stringValue != nil && v["label"] == "msgflo")
                #expect(v["message"]?.stringValue != nil)
                if let r = v["metadata"]?["role"]?.stringValue { roles.insert(r) }
                logLines += 1
            }
            #expect(logLines >= 5)
            #expect(roles.count >= 2, "\(roles)")
            // The two start lines on stdout stay plain text; nothing else is outside JSON.
            let other = net.daemon.log.split(separator: "\n").filter { !$0.hasPrefix("{") }
            #expect(other.allSatisfy { $0.hasPrefix("msgflo started on") || $0.hasPrefix("Open in Flowhub") }, "\(other)")
        } catch {
            await net.stop()
            throw error
        }
        await net.stop()
    }
}
}
