import Foundation
import Logging
import MsgFlo
import MsgFloCoordinator
@testable import MsgFloTools
import MsgFloTransports
import TestSupport
import Testing

/// `msgflo-queues` (issue 14, item 6) run as a process against the real brokers.
@Suite(.serialized) struct QueuesToolTests {
    static func env(_ kind: TestBrokers.Kind) throws -> [String: String] { try ToolProcessTests.env(kind) }

    static func rows(_ r: ToolProcess.Result) throws -> [String: JSONValue] {
        let j = try JSONValue(parsing: r.stdout)
        var out: [String: JSONValue] = [:]
        for q in j["queues"]?.arrayValue ?? [] { if let n = q["name"]?.stringValue { out[n] = q } }
        return out
    }

    /// Runs msgflo-queues (`--no-daemon`: only what is heard on fbp, so that no coordinator of another test answers
    /// in its place; on MQTT every test shares fbp) until `done` holds for its JSON rows, at most 15 times; returns
    /// the last run, which the caller checks in full. `during` runs beside each run (cancelled when it ends): on MQTT
    /// an announcement is heard only while the tool listens.
    static func queues(_ kind: TestBrokers.Kind, _ args: [String], during: @escaping @Sendable () async throws -> Void,
                       until done: ([String: JSONValue]) -> Bool) async throws -> ToolProcess.Result {
        var last: ToolProcess.Result?
        for _ in 0..<15 {
            let env = try Self.env(kind)
            let r = try await withThrowingTaskGroup(of: ToolProcess.Result?.self) { g in
                g.addTask { try await during(); return nil }
                g.addTask {
                    try await ToolProcess.run("msgflo-queues", args + ["--json", "--no-daemon", "--listen", "2"], env: env,
                                              timeout: .seconds(60))
                }
                while let next = try await g.next() {
                    if let r = next { g.cancelAll(); return r }
                }
                throw CancellationError()
            }
            last = r
            guard r.status == 0 else { return r }
            // On MQTT every participant of the tests running beside this one is listed (no vhost there): hundreds
            // of KB. The run returned is parsed (and checked) in full.
            guard let rows = try? Self.rows(r) else { return r }
            if done(rows) { return r }
        }
        return last!
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func queuesOfAGraphAndOfItsParticipants(_ kind: TestBrokers.Kind) async throws {
        let a = TestBrokers.unique("qa"), b = TestBrokers.unique("qb")
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let graph = dir.appendingPathComponent("g.fbp")
        try "\(a)(Repeat) OUT -> IN \(b)(Repeat)\n".write(to: graph, atomically: true, encoding: .utf8)
        // a runs; b has no participant, but on AMQP its queue is there with 3 messages waiting.
        let p = try ToolProcess.start("msgflo-participant", ["Repeat", a, "--discovery-period", "1"], env: try Self.env(kind))
        defer { p.signal(SIGKILL) }
        #expect(await p.waitForOutput("connected to"), "\(p.stderr)")
        let t = try await ToolProcessTests.transport(kind)
        if kind == .amqp {
            try await t.declareInport("\(b).IN", options: QueueOptions(persistent: false))
            for i in 0..<3 { try await t.sendRouted(toInport: "\(b).IN", Message(json: .int(i))) }
        }
        // A participant with hostile names, announced by hand: printed escaped, never asked about when no broker
        // could take the name.
        // (Announced again and again while the tool listens: an MQTT announcement reaches only those subscribed when
        // it is sent, and on AMQP a coordinator of another test may take one off fbp.)
        let evil = TestBrokers.unique("ev") + "\u{1b}[2J\nforged"
        let r = try await Self.queues(kind, ["--graph", graph.path], during: {
            while !Task.isCancelled {
                try await t.announce(ParticipantDefinition(id: evil, role: evil, component: "Evil",
                                                           inports: [PortDefinition(id: "in", queue: evil + ".IN")]))
                try await Task.sleep(for: .milliseconds(300))
            }
        }) { rows in
            rows["\(a).IN"]?["registered"] == .bool(true) && rows[evil + ".IN"] != nil
        }
        #expect(r.status == 0, "\(r)")
        #expect(!r.stdout.contains("\u{1b}") && r.stdout.split(separator: "\n").count == 1, "\(r)")
        let rows = try Self.rows(r)
        let aIn = try #require(rows["\(a).IN"], "\(r)")
        #expect(aIn["ports"] == .array([.string("\(a).in")]) || aIn["ports"] == .array([.string("\(a).IN")]), "\(aIn)")
        // a.IN is a's (registered) but no edge of the graph's; a.OUT is both; b.IN the graph's only.
        #expect(aIn["inGraph"] == .bool(false) && aIn["direction"] == .string("in"), "\(aIn)")
        let bIn = try #require(rows["\(b).IN"], "\(r)")
        #expect(bIn["inGraph"] == .bool(true) && bIn["registered"] == .bool(false), "\(bIn)")
        let aOut = try #require(rows["\(a).OUT"], "\(r)")
        #expect(aOut["direction"] == .string("out") && aOut["inGraph"] == .bool(true) && aOut["registered"] == .bool(true),
                "\(aOut)")
        #expect(rows["\(b).OUT"] == nil)  // not in the graph's edges, and b is not running
        let j = try JSONValue(parsing: r.stdout)
        #expect(j["participants"] == .string("discovery"), "\(r)")
        let shownBroker = j["broker"]?.stringValue ?? ""
        #expect(shownBroker.contains("127.0.0.1") && shownBroker.contains("guest:guest") == false, "\(shownBroker)")
        if kind == .amqp {
            #expect(aIn["kind"] == .string("queue") && aIn["exists"] == .bool(true) && aIn["consumers"] == .int(1), "\(aIn)")
            #expect(bIn["messages"] == .int(3) && bIn["consumers"] == .int(0), "\(bIn)")
            #expect(aOut["kind"] == .string("exchange") && aOut["exists"] == .bool(true), "\(aOut)")
            #expect(aIn["unacknowledged"] == .null)
            #expect(j["unknown"]?.stringValue?.contains("UNACKED unknown") == true)
            // The hostile name cannot be a queue on RabbitMQ? It can (any bytes but NUL): it is simply missing.
            #expect(rows[evil + ".IN"]?["exists"] == .bool(false), "\(r)")
        } else {
            #expect(aIn["kind"] == .string("topic") && aIn["messages"] == .null && aIn["consumers"] == .null, "\(aIn)")
            #expect(j["unknown"]?.stringValue?.contains("MQTT cannot tell") == true)
        }

        // The table: one header, aligned columns, names escaped, then the two lines saying where from and what
        // cannot be known.
        let table = try await ToolProcess.run("msgflo-queues", ["--graph", graph.path, "--no-daemon", "--listen", "2"],
                                              env: try Self.env(kind), timeout: .seconds(60))
        #expect(table.status == 0, "\(table)")
        #expect(!table.stdout.contains("\u{1b}"), "\(table)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("NAME") == true, "\(table)")
        let kindColumn = try #require(lines.first?.range(of: "KIND")).lowerBound.utf16Offset(in: lines[0])
        for line in lines.dropFirst() where line.contains(a) || line.contains(b) {
            let cells = line.split(separator: " ", omittingEmptySubsequences: true)
            let kindCell = String(cells[1])
            #expect(["queue", "exchange", "topic"].contains(kindCell), "\(line)")
            #expect(line.range(of: " \(kindCell) ")!.lowerBound.utf16Offset(in: line) + 1 == kindColumn, "\(line)")
        }
        if kind == .amqp {
            #expect(lines.contains { $0.hasPrefix("\(b).IN ") && $0.contains(" 3 ") }, "\(table)")
            #expect(lines.last?.hasPrefix("UNACKED unknown") == true, "\(table)")
        } else {
            #expect(lines.last?.hasPrefix("MQTT cannot tell") == true, "\(table)")
        }
        #expect(lines.dropLast().last?.hasPrefix("participants: from the announcements heard on fbp") == true, "\(table)")
        #expect(lines.dropLast().last?.contains("no coordinator asked: --no-daemon") == true, "\(table)")
        p.signal(SIGTERM)
        _ = await p.wait(timeout: .seconds(15))
        await t.close()
    }

    @Test func badInputIsOneLineAndExit1() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.fbp")
        try "# nothing\n".write(to: empty, atomically: true, encoding: .utf8)
        let amqp = try Self.env(.amqp)
        let cases: [([String], [String: String], String)] = [
            (["--graph", dir.appendingPathComponent("missing.fbp").path], amqp, "missing.fbp"),
            (["--graph", empty.path], amqp, "no processes"),
            (["--timeout", "-1"], amqp, "--timeout"),
            (["--listen", "soon"], amqp, "--listen"),
            (["--no-daemon", "--listen", "0"], amqp, "--no-daemon"),
            (["--bogus"], amqp, "--bogus"),
            ([], ["MSGFLO_BROKER": "amqp://guest:secret@127.0.0.1:1/"], "127.0.0.1"),
            (["--broker", "gopher://x"], [:], "gopher"),
        ]
        for (args, env, says) in cases {
            let r = try await ToolProcess.run("msgflo-queues", args + ["--connect-timeout", "3"], env: env,
                                              timeout: .seconds(30))
            #expect(r.status == 1, "\(args): \(r)")
            #expect(r.stdout.isEmpty, "\(args): \(r)")
            #expect(r.stderrLines.count == 1 && r.stderr.contains(says), "\(args): \(r)")
            #expect(!r.stderr.contains("secret"), "\(r)")
        }
    }
}

/// How msgflo-queues puts the coordinator's answer and a graph together (no broker).
@Suite struct QueueReportLogicTests {
    typealias E = DesiredGraph.Endpoint

    @Test func daemonAnswerAndGraphMakeOneRowPerName() throws {
        // The answer as it travels; the second row is a daemon older than the ports field (only its measured
        // inport queues).
        let answer = try JSONValue(parsing: """
            {"source": "daemon", "rows": [
              {"role": "a", "component": "Repeat", "inGraph": true, "participants": [], "pendingEdges": [],
               "queueDepths": {"custom/a-in": 2}, "inports": {"in": "custom/a-in"}, "outports": {"out": "a.OUT"}},
              {"role": "old", "component": "X", "inGraph": false, "participants": [], "pendingEdges": [],
               "queueDepths": {"old.IN": 0}}]}
            """)
        let status = try NetworkStatus(json: answer)
        #expect(status.rows.first { $0.role == "a" }?.inports == ["in": "custom/a-in"])
        // And back: the ports survive a round trip through the daemon's JSON.
        #expect(try NetworkStatus(json: status.json).rows.first { $0.role == "a" }?.outports == ["out": "a.OUT"])
        let graph = DesiredGraph(
            nodes: [("a", .init(component: "Repeat")), ("b", .init(component: "Repeat")),
                    ("rr", .init(component: DesiredGraph.roundRobin))],
            edges: [.init(E("b", "out"), E("a", "IN")), .init(E("a", "out"), E("rr", "in"))])
        let rows = QueueReport.collect(status: status, graph: graph)
        var byName: [String: QueueReport.Row] = [:]
        for r in rows { byName[r.name] = r }
        #expect(rows.count == Set(rows.map(\.name)).count)
        // a's inport: the announced queue, matched to the graph's IN ignoring case; registered and in the graph.
        let aIn = try #require(byName["custom/a-in"])
        #expect(aIn.registered && aIn.inGraph && aIn.direction == QueueReport.Row.Direction.inport && aIn.ports == ["a.in"], "\(aIn)")
        #expect(byName["a.IN"] == nil)
        #expect(byName["a.OUT"]?.inGraph == true && byName["a.OUT"]?.registered == true)
        // b has no participant: the role.PORT convention.
        #expect(byName["b.OUT"]?.registered == false && byName["b.OUT"]?.inGraph == true)
        #expect(byName["old.IN"]?.registered == true)
        // A round-robin node has no queue of its own.
        #expect(!rows.contains { $0.ports.contains { $0.hasPrefix("rr.") } })
    }

    @Test func tableEscapesNamesAndKeepsColumnsAligned() {
        let evil = "x\u{1b}[31m\nforged"
        let report = QueueReport(broker: "amqp://127.0.0.1/", amqp: true, source: .none, listened: .seconds(1), rows: [
            QueueReport.Row(name: evil, direction: .inport, ports: ["r.in"], inGraph: true, registered: false, exists: true,
                  messages: 12345, consumers: 0),
            QueueReport.Row(name: "short", direction: .outport, ports: ["r.out"], inGraph: true, exists: false),
        ])
        let lines = report.tableLines
        #expect(lines.allSatisfy { !$0.contains("\u{1b}") && !$0.contains("\n") })
        let header = lines[0]
        let column = header.range(of: "KIND")!.lowerBound.utf16Offset(in: header)
        for line in lines[1...2] {
            #expect(line.range(of: line.contains("short") ? "exchange" : "queue")!.lowerBound.utf16Offset(in: line) == column, "\(line)")
        }
        #expect(lines[1].contains("12345") && lines[2].hasSuffix("missing, no participant"), "\(lines)")
        #expect(lines.last!.hasPrefix("UNACKED unknown"))
    }
}
