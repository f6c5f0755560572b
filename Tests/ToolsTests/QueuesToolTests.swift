import Foundation
import MsgFlo
import MsgFloCoordinator
@testable import MsgFloTools
import MsgFloTransports
import TestSupport
import Testing

/// `msgflo-queues` (issue 14, item 6) run as a process against the real brokers.
@Suite(.serialized) struct QueuesToolTests {
    static func env(_ kind: TestBrokers.Kind) throws -> [String: String] { try ToolProcessTests.env(kind) }

    static func rows(_ r: ToolProcess.Result) throws -> JSONObject {
        let j = try JSONValue(parsing: r.stdout)
        var out: JSONObject = [:]
        for q in j["queues"]?.arrayValue ?? [] { if let n = q["name"]?.stringValue { out[n] = q } }
        return out
    }

    /// Runs msgflo-queues (`--no-daemon`: only what is heard on fbp, so that no coordinator of another test answers
    /// in its place; on MQTT every test shares fbp) until `done` holds for its JSON rows, at most 15 times; returns
    /// the last run, which the caller checks in full. `during` runs beside each run (cancelled when it ends): on MQTT
    /// an announcement is heard only while the tool listens.
    static func queues(_ kind: TestBrokers.Kind, _ args: [String], during: @escaping @Sendable () async throws -> Void,
                       until done: (JSONObject) -> Bool) async throws -> ToolProcess.Result {
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
        let p = try await ToolProcess.start("msgflo-participant", ["Repeat", a, "--discovery-period", "1"], env: try Self.env(kind))
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
        // On AMQP the management API is named at a port where nothing listens: the counts it would give are left
        // unknown, with one line saying why (unacknowledgedCountsFromTheManagementAPI reads them).
        let noAPI = kind == .amqp ? ["--management", "http://127.0.0.1:1/"] : []
        let r = try await Self.queues(kind, ["--graph", graph.path] + noAPI, during: {
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
            #expect(j["unknown"]?.stringValue?.hasPrefix("UNACKED unknown") == true, "\(r)")
            #expect(j["unknown"]?.stringValue?.contains("the management API at http://127.0.0.1:1/ does not answer") == true, "\(r)")
            // The hostile name cannot be a queue on RabbitMQ? It can (any bytes but NUL): it is simply missing.
            #expect(rows[evil + ".IN"]?["exists"] == .bool(false), "\(r)")
        } else {
            #expect(aIn["kind"] == .string("topic") && aIn["messages"] == .null && aIn["consumers"] == .null, "\(aIn)")
            #expect(j["unknown"]?.stringValue?.contains("MQTT cannot tell") == true)
        }

        // The table: one header, aligned columns, names escaped, then the two lines saying where from and what
        // cannot be known.
        let table = try await ToolProcess.run("msgflo-queues", ["--graph", graph.path, "--no-daemon", "--listen", "2"] + noAPI,
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
            (["--management", "gopher://u:secret@127.0.0.1:9/"], amqp, "--management 'gopher://***@127.0.0.1:9/'"),
            (["--management", "http://u:secret@127.0.0.1:99999/"], amqp, "the port must be 1-65535"),
            (["--management", "https://127.0.0.1/"], amqp, "https is not supported"),
            (["--management", "http://u:secret@/x"], amqp, "no host"),
            (["--management", "http://127.0.0.1:1/"], try Self.env(.mqtt), "--management is for AMQP brokers"),
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

/// msgflo-queues and RabbitMQ's management API (the private broker's plugin, `Scripts/brokers`).
@Suite(.serialized) struct QueuesManagementTests {
    static func managementURL() throws -> String {
        try #require(TestBrokers.setting("MSGFLO_TEST_AMQP_MANAGEMENT_URL"),
                     "MSGFLO_TEST_AMQP_MANAGEMENT_URL is not set: run Scripts/brokers start")
    }

    /// A participant holds 3 of 5 messages unacknowledged (msgflo-exec, prefetch 3, a program that sleeps): the
    /// management API's count is shown, beside the 2 ready and the one consumer.
    @Test func unacknowledgedCountsFromTheManagementAPI() async throws {
        let role = TestBrokers.unique("hold")
        let env = try ToolProcessTests.env(.amqp)
        let api = try Self.managementURL()
        let p = try await ToolProcess.start("msgflo-exec", [role, "--prefetch", "3", "--timeout", "40", "--discovery-period", "1",
                                                      "--", "sleep", "30"], env: env)
        defer { p.signal(SIGKILL) }
        #expect(await p.waitForOutput("connected to"), "\(p.stderr)")
        let t = try await ToolProcessTests.transport(.amqp)
        for i in 0..<5 { try await t.sendRouted(toInport: "\(role).IN", Message(json: .int(i))) }
        // RabbitMQ samples its queue statistics (every 5 s by default): asked until they show the held messages.
        let r = try await QueuesToolTests.queues(.amqp, ["--management", api], during: {}) { rows in
            rows["\(role).IN"]?["unacknowledged"] == .int(3)
        }
        #expect(r.status == 0, "\(r)")
        let rows = try QueuesToolTests.rows(r)
        let row = try #require(rows["\(role).IN"], "\(r)")
        #expect(row["unacknowledged"] == .int(3) && row["messages"] == .int(2) && row["consumers"] == .int(1), "\(row)")
        let j = try JSONValue(parsing: r.stdout)
        #expect(j["management"] == .string(api), "\(r)")
        #expect(j["unknown"]?.stringValue?.hasPrefix("UNACKED from the management API at \(api)") == true, "\(r)")
        #expect(!r.stdout.contains("guest:guest") && !r.stderr.contains("guest:guest"), "\(r)")
        // The table: the count in the UNACKED column. Asked again until the participant is heard: other tests'
        // coordinators and listeners consume fbp beside this one, and an announcement goes to one of them.
        let runTable = {
            try await ToolProcess.run("msgflo-queues", ["--no-daemon", "--listen", "2", "--management", api],
                                      env: env, timeout: .seconds(60))
        }
        var table = try await runTable()
        for _ in 0..<10 where table.status == 0 && !table.stdout.contains("\n\(role).IN ") {
            table = try await runTable()
        }
        #expect(table.status == 0, "\(table)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        let unackedColumn = try #require(lines.first?.range(of: "UNACKED")).lowerBound.utf16Offset(in: lines[0])
        let line = try #require(lines.first { $0.hasPrefix("\(role).IN ") }, "\(table)")
        let rest = line.utf16.dropFirst(unackedColumn)
        #expect(String(decoding: rest, as: UTF16.self).hasPrefix("3 "), "\(table)")
        p.signal(SIGTERM)
        _ = await p.wait(timeout: .seconds(15))
        await t.close()
    }

    /// The API away, on a port that speaks something else, or refusing the credentials: exit 0, the column
    /// unknown, one line saying why; never a password.
    @Test func withoutTheManagementAPITheColumnIsUnknown() async throws {
        let role = TestBrokers.unique("noapi")
        let t = try await ToolProcessTests.transport(.amqp)
        try await t.declareInport("\(role).IN", options: QueueOptions(persistent: false))
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let graph = dir.appendingPathComponent("g.fbp")
        try "x(Repeat) OUT -> IN \(role)(Repeat)\n".write(to: graph, atomically: true, encoding: .utf8)
        let api = try Self.managementURL()
        let mqttPort = try BrokerURL(parsing: try TestBrokers.url(.mqtt).unredacted).port
        let cases: [(String, String)] = [
            ("http://127.0.0.1:\(freeTCPPort())/", "does not answer"),
            ("http://127.0.0.1:\(mqttPort)/", "does not answer"),
            (api.replacingOccurrences(of: "http://", with: "http://guest:secret@"), "refused user 'guest' (HTTP 401)"),
        ]
        for (url, says) in cases {
            let r = try await ToolProcess.run("msgflo-queues", ["--graph", graph.path, "--no-daemon", "--listen", "0.5",
                                                                "--json", "--management", url],
                                              env: try ToolProcessTests.env(.amqp), timeout: .seconds(60))
            #expect(r.status == 0, "\(url): \(r)")
            let j = try JSONValue(parsing: r.stdout)
            let row = try #require(try QueuesToolTests.rows(r)["\(role).IN"], "\(r)")
            #expect(row["exists"] == .bool(true) && row["unacknowledged"] == .null, "\(row)")
            let line = j["unknown"]?.stringValue ?? ""
            #expect(line.hasPrefix("UNACKED unknown") && line.contains(says), "\(url): \(line)")
            #expect(!r.stdout.contains("secret") && !r.stderr.contains("secret"), "\(r)")
        }
        await t.close()
    }
}

/// ManagementAPI's URL rules and how it reads answers, against canned HTTP answers of a local socket (no broker).
@Suite struct ManagementAPILogicTests {
    @Test func urlsAndDefaults() throws {
        let broker = try BrokerURL(parsing: "amqp://alice:pw%40x@rabbit.example:5672/prod")
        let d = ManagementAPI.derived(from: broker)
        #expect(d.host == "rabbit.example" && d.port == 15672 && d.user == "alice" && d.password == "pw@x")
        #expect(d.description == "http://rabbit.example:15672/")
        let guest = ManagementAPI.derived(from: try BrokerURL(parsing: "amqp://127.0.0.1/"))
        #expect(guest.user == "guest" && guest.password == "guest")
        let given = try ManagementAPI.parse("http://bob:s%2Fcret@10.0.0.1:8080/rabbit/", broker: broker)
        #expect(given.user == "bob" && given.password == "s/cret" && given.port == 8080 && given.pathPrefix == "/rabbit")
        #expect(given.description == "http://10.0.0.1:8080/rabbit/" && !given.description.contains("cret"))
        let noCredentials = try ManagementAPI.parse("http://[::1]:15672", broker: broker)
        #expect(noCredentials.host == "::1" && noCredentials.user == "alice" && noCredentials.password == "pw@x")
        // A vhost "/" and names with any bytes are one path segment each.
        #expect(ManagementAPI.segment("/") == "%2F" && ManagementAPI.segment("a b/c?\u{1b}é") == "a%20b%2Fc%3F%1B%C3%A9")
        #expect(given.queuePath(vhost: "/", name: "x.IN").hasPrefix("/rabbit/api/queues/%2F/x.IN?columns="))
        for bad in ["ftp://x/", "http://", "http://x/?a=1", "http://x:0/", "not a url at all \u{1b}"] {
            #expect(throws: MsgFloError.self, "\(bad)") { try ManagementAPI.parse(bad, broker: broker) }
        }
    }

    /// Serves one canned answer per connection on a local port, from a thread of its own.
    final class CannedServer: @unchecked Sendable {
        let fd: Int32
        let port: Int
        init(answers: [String]) throws {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
            fd = s
            port = Int(UInt16(bigEndian: addr.sin_port))
            guard listen(fd, 8) == 0 else { throw MsgFloError(.connectionFailed, "listen") }
            let fd = self.fd
            Thread.detachNewThread {
                for answer in answers {
                    let c = accept(fd, nil, nil)
                    guard c >= 0 else { return }
                    var buf = [UInt8](repeating: 0, count: 4096)
                    _ = read(c, &buf, buf.count)
                    let bytes = Array(answer.utf8)
                    _ = bytes.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                    close(c)
                }
            }
        }
        deinit { close(fd) }
    }

    static func http(_ status: String, _ body: String) -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    @Test func answersAreCheckedNotTrusted() async throws {
        let ok = #"{"name":"q.IN","vhost":"/","messages_ready":2,"messages_unacknowledged":3,"consumers":1}"#
        let bad = #"{"name":"q.IN","vhost":"/","messages_ready":-1,"messages_unacknowledged":1e300,"consumers":"x"}"#
        let server = try CannedServer(answers: [
            Self.http("200 OK", ok),
            Self.http("404 Not Found", #"{"error":"Object Not Found"}"#),
            Self.http("200 OK", #"{"name":"other\u001b[2J","vhost":"/","messages_unacknowledged":1}"#),
            Self.http("200 OK", "<html>\u{1b}[2J</html>"),
            Self.http("200 OK", bad),
            Self.http("200 OK", String(repeating: " ", count: ManagementAPI.maxResponseBytes + 1)),
            Self.http("500 Oops\u{1b}[2J", "{}"),
        ])
        var api = try ManagementAPI.parse("http://u:topsecret@127.0.0.1:\(server.port)/", broker: try BrokerURL(parsing: "amqp://127.0.0.1/"))
        api.timeout = .seconds(10)
        #expect(try await api.queue(vhost: "/", name: "q.IN") == .init(ready: 2, unacknowledged: 3, consumers: 1))
        #expect(try await api.queue(vhost: "/", name: "q.IN") == nil)
        for says in ["another queue", "not JSON", nil, "at most 65536 taken", "HTTP 500"] {
            do {
                let c = try await api.queue(vhost: "/", name: "q.IN")
                // Counts that are no counts are not taken.
                #expect(says == nil && c == .init(ready: nil, unacknowledged: nil, consumers: nil), "\(String(describing: c))")
            } catch {
                let text = "\(error)"
                #expect(says != nil && text.contains(says!), "\(text)")
                #expect(!text.contains("\u{1b}") && !text.contains("topsecret"), "\(text)")
            }
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
