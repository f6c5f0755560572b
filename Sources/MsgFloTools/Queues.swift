import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCoordinator

/// `msgflo-queues`: the queues of a graph and of the registered participants, with what the broker says about
/// them (issue 14, item 6).
package struct QueuesCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-queues",
        abstract: "List the queues of a graph and of the registered participants, with depth and consumers.",
        discussion: """
        The participants and their queues come from the running msgflo coordinator (asked over the broker, as \
        `msgflo status` does); when none answers, from the discovery messages heard on fbp during --listen \
        seconds (on AMQP they are left for the coordinator). With --graph, the graph's ports are listed too: by \
        the queue their participant announced, else by msgflo's role.PORT convention.

        AMQP: an inport is a queue; a passive declare (which creates nothing) gives its ready messages and its \
        consumers, or says it is missing. An outport is an exchange: only whether it exists. Messages delivered and \
        not yet acknowledged are counted by RabbitMQ's management plugin only: they are read from its HTTP API \
        (--management URL; default http://BROKER-HOST:15672/ with the broker URL's user and password). When the API \
        does not answer, that column says unknown and one line says why. MQTT: a broker does not tell how many messages wait for a topic nor who subscribes; only the topics are \
        listed, and one line says so.

        --no-daemon skips asking a coordinator and only listens on fbp: on MQTT (no virtual hosts) any coordinator         using the broker would answer, also one running another graph.

        --json prints one JSON object instead of the table. Example: msgflo-queues --graph graphs/rpc.fbp
        """)

    @OptionGroup package var brokerOptions: BrokerOptions

    @Option(help: ArgumentHelp("Also list the queues of this graph (.fbp or .json).", valueName: "FILE"))
    package var graph: String?

    @Flag(help: "Print one JSON object instead of the table.")
    package var json = false

    @Option(help: ArgumentHelp("Seconds to wait for a running coordinator's answer.", valueName: "SECONDS"))
    package var daemonTimeout: Double = 2

    @Flag(help: "Do not ask a coordinator: only listen for the participants' announcements on fbp (--listen seconds).")
    package var noDaemon = false

    @Option(help: ArgumentHelp("When no coordinator answers: seconds to listen for participants' announcements (0: do not).",
                               valueName: "SECONDS"))
    package var listen: Double = 3

    @Option(help: ArgumentHelp("Give up (one line, exit 1) after this many seconds in all.", valueName: "SECONDS"))
    package var timeout: Double = 30

    @Option(help: ArgumentHelp(
        "AMQP: RabbitMQ's management API, for the unacknowledged counts (http://[USER:PASSWORD@]HOST:PORT[/PREFIX]; default: the broker's host, port 15672, the broker URL's credentials).",
        valueName: "URL"))
    package var management: String?

    package init() {}

    package func validate() throws {
        if let graph, graph.isEmpty { throw ValidationError("--graph needs a file") }
        if noDaemon && listen == 0 { throw ValidationError("--no-daemon needs --listen above 0 (else no participant can be found)") }
        for (name, v, zero) in [("--daemon-timeout", daemonTimeout, false), ("--listen", listen, true),
                                ("--timeout", timeout, false)] {
            guard v.isFinite, zero ? v >= 0 : v > 0, v <= 3600 else {
                throw ValidationError("\(name) must be a \(zero ? "non-negative" : "positive") number of seconds (at most 3600)")
            }
        }
    }

    package func run() async throws {
        let loaded = try graph.map { try GraphFile.load($0, warn: Output.error, requireProcesses: true) }
        let url = try brokerOptions.url()
        let api = try ManagementAPI.forBroker(url, given: management)
        let report = try await brokerOptions.withConnection(tool: Self.configuration.commandName!) { transport in
            try await withDeadline(.seconds(double: timeout),
                                   what: "no answer from \(url) within \(Duration.seconds(double: timeout).seconds) s") {
                [daemonTimeout, listen, noDaemon, api] in
                try await QueueReport.make(on: transport, graph: loaded,
                                           daemonTimeout: noDaemon ? nil : .seconds(double: daemonTimeout),
                                           listen: .seconds(double: listen), management: api)
            }
        }
        if json {
            Output.line(report.json.serialized)
        } else {
            for line in report.tableLines { Output.line(line) }
        }
    }
}

/// What msgflo-queues found: one row per queue (AMQP) or topic (MQTT), and where the participants came from.
package struct QueueReport: Sendable {
    package struct Row: Sendable, Hashable {
        package enum Direction: String, Sendable { case inport = "in", outport = "out" }
        /// As the participant or the graph names it (unchecked: escape before printing).
        package var name: String
        package var direction: Direction
        /// `role.port` of every port that uses it.
        package var ports: [String] = []
        package var inGraph = false
        /// A registered participant announced it.
        package var registered = false
        /// nil: the broker cannot tell (MQTT) or it was not asked (a name that cannot go on the wire).
        package var exists: Bool?
        package var messages: Int?
        package var consumers: Int?
        /// Delivered and not yet acknowledged (AMQP, from the management API).
        package var unacknowledged: Int?
        /// Why nothing could be asked, or what went wrong asking.
        package var problem: String?
    }

    package enum Source: String, Sendable {
        case daemon, discovery, none
    }

    /// No coordinator was asked (`--no-daemon`).
    package var daemonAsked = true
    /// The management API asked for the unacknowledged counts (AMQP), as printed (no credentials).
    package var management: String?
    /// Why the management API gave no counts (nil: it answered, or it was not asked).
    package var managementProblem: String?

    package var broker: String
    package var amqp: Bool
    package var source: Source
    package var listened: Duration
    package var rows: [Row]
    /// A graph was given (else no row is said to be outside it).
    package var withGraph = false

    /// The line saying what cannot be known on this broker.
    package var unknownLine: String {
        if amqp, let management, managementProblem == nil {
            return "UNACKED from the management API at \(management) (sampled by RabbitMQ: up to its statistics interval, 5 s by default, old)"
        }
        return amqp
            ? "UNACKED unknown: RabbitMQ counts messages delivered and not yet acknowledged only in its management plugin, and \(SafeText.escape(managementProblem ?? "no management API was asked", limit: 300)) (give --management URL; on the broker's host: rabbitmqctl list_queues name messages_unacknowledged)"
            : "MQTT cannot tell: a broker does not say how many messages wait for a topic, who subscribes to it, or what is unacknowledged; only the topics are listed"
    }

    package var sourceLine: String {
        switch source {
        case .daemon: "participants: from the running coordinator"
        case .discovery: "participants: from the announcements heard on fbp in \(listened.seconds) s (\(noCoordinator))"
        case .none: "participants: none (\(noCoordinator)\(listened > .zero ? ", no announcement heard in \(listened.seconds) s" : ""))"
        }
    }

    private var noCoordinator: String { daemonAsked ? "no coordinator answered" : "no coordinator asked: --no-daemon" }

    // MARK: Gathering

    /// `daemonTimeout` nil: no coordinator is asked, the participants come from `listen` only.
    package static func make(on transport: any Transport, graph: DesiredGraph?, daemonTimeout: Duration?,
                            listen: Duration, management: ManagementAPI? = nil) async throws -> QueueReport {
        var source = Source.none
        var status: NetworkStatus? = nil
        if let daemonTimeout { status = try await StatusClient.ask(transport, timeout: daemonTimeout) }
        if status != nil {
            source = .daemon
        } else if listen > .zero {
            let heard = try await StatusClient.listen(transport, for: listen)
            if !heard.rows.isEmpty {
                status = heard
                source = .discovery
            }
        }
        var rows = collect(status: status, graph: graph)
        let amqp = transport.capabilities.contains(.queueDepth)
        // Asked together (the transport pipelines them), a few hundred at a time.
        for chunk in stride(from: 0, to: rows.count, by: 256) {
            let range = chunk..<min(rows.count, chunk + 256)
            let measured = await withTaskGroup(of: (Int, Row).self) { g in
                for i in range {
                    let row = rows[i]
                    g.addTask {
                        var r = row
                        await measure(&r, on: transport, amqp: amqp)
                        return (i, r)
                    }
                }
                var out: [(Int, Row)] = []
                for await r in g { out.append(r) }
                return out
            }
            for (i, r) in measured { rows[i] = r }
        }
        var report = QueueReport(broker: transport.broker.description, amqp: amqp, source: source, listened: listen,
                                 rows: rows, withGraph: graph != nil)
        report.daemonAsked = daemonTimeout != nil
        if amqp, let management {
            report.management = management.redacted
            report.managementProblem = await askManagement(management, vhost: transport.broker.vhost, rows: &report.rows)
        }
        return report
    }

    /// The rows of the participants' ports, then those of the graph's ports not among them; in that order, each
    /// name once.
    static func collect(status: NetworkStatus?, graph: DesiredGraph?) -> [Row] {
        var rows: [Row] = []
        var index: [String: Int] = [:]
        func add(_ name: String, _ direction: Row.Direction, port: String, registered: Bool, inGraph: Bool) {
            let i: Int
            if let known = index[name] {
                i = known
            } else {
                i = rows.count
                index[name] = i
                rows.append(Row(name: name, direction: direction))
            }
            if !rows[i].ports.contains(port) { rows[i].ports.append(port) }
            rows[i].registered = rows[i].registered || registered
            rows[i].inGraph = rows[i].inGraph || inGraph
        }
        var byRole: [String: NetworkStatus.Row] = [:]
        for r in status?.rows ?? [] {
            byRole[r.role] = r
            for (port, q) in r.inports.sorted(by: { $0.key < $1.key }) {
                add(q, .inport, port: "\(r.role).\(port)", registered: true, inGraph: false)
            }
            // A daemon older than the ports field: its inport queues are those it measured.
            if r.inports.isEmpty {
                for q in r.queueDepths.keys.sorted() { add(q, .inport, port: "\(r.role).?", registered: true, inGraph: false) }
            }
            for (port, q) in r.outports.sorted(by: { $0.key < $1.key }) {
                add(q, .outport, port: "\(r.role).\(port)", registered: true, inGraph: false)
            }
        }
        guard let graph else { return rows }
        func queue(_ e: DesiredGraph.Endpoint, _ d: Row.Direction) -> (String, String) {
            let announced = d == .inport ? byRole[e.role]?.inports : byRole[e.role]?.outports
            if let announced {
                if let q = announced[e.port] { return (q, e.port) }
                if let (p, q) = announced.first(where: { $0.key.lowercased() == e.port.lowercased() }) { return (q, p) }
            }
            return (e.conventionQueue, e.port)
        }
        func graphPort(_ e: DesiredGraph.Endpoint, _ d: Row.Direction) {
            let component = graph.nodes[e.role]?.component
            if component == DesiredGraph.roundRobin || component == DesiredGraph.pubSub { return }
            let (q, port) = queue(e, d)
            add(q, d, port: "\(e.role).\(port)", registered: false, inGraph: true)
        }
        for edge in graph.edges {
            graphPort(edge.src, .outport)
            graphPort(edge.tgt, .inport)
        }
        for ex in graph.inports { graphPort(ex.endpoint, .inport) }
        for ex in graph.outports { graphPort(ex.endpoint, .outport) }
        for iip in graph.initials { graphPort(iip.tgt, .inport) }
        return rows
    }

    /// Asks the broker about one row. A name that cannot go on the wire is not sent.
    static func measure(_ row: inout Row, on transport: any Transport, amqp: Bool) async {
        if let why = WireName.problem(row.name, WireName.Broker(transport.broker)) {
            row.problem = "not asked: \(why)"
            return
        }
        guard amqp else { return }
        do {
            switch row.direction {
            case .inport:
                if let s = try await transport.queueStats(row.name) {
                    row.exists = true
                    row.messages = s.messages
                    row.consumers = s.consumers
                }
            case .outport:
                row.exists = try await transport.exchangeExists(row.name)
            }
        } catch let error as MsgFloError where error.code == .notFound {
            row.exists = false
        } catch {
            row.problem = "\(error)"
        }
    }

    /// Reads the unacknowledged count of every existing inport queue from the management API, eight at a time. The
    /// first failure (nothing answers, credentials refused, an answer that cannot be read) ends the asking: it is
    /// returned, for the line saying why the column is unknown, and no row keeps a count.
    static func askManagement(_ api: ManagementAPI, vhost: String, rows: inout [Row]) async -> String? {
        let wanted = rows.indices.filter { rows[$0].direction == .inport && rows[$0].exists == true }
        var counts: [Int: Int] = [:]
        var problem: String?
        for chunk in stride(from: 0, to: wanted.count, by: 8) where problem == nil {
            let batch = wanted[chunk..<min(wanted.count, chunk + 8)]
            let answers = await withTaskGroup(of: (Int, Result<ManagementAPI.QueueCounts?, any Error>).self) { g in
                for i in batch {
                    let name = rows[i].name
                    g.addTask { (i, await Result { try await api.queue(vhost: vhost, name: name) }) }
                }
                var out: [(Int, Result<ManagementAPI.QueueCounts?, any Error>)] = []
                for await a in g { out.append(a) }
                return out
            }
            for (i, answer) in answers.sorted(by: { $0.0 < $1.0 }) {
                switch answer {
                case .success(let c): if let n = c?.unacknowledged { counts[i] = n }
                case .failure(let e): if problem == nil { problem = "\(e)" }
                }
            }
        }
        if problem == nil { for (i, n) in counts { rows[i].unacknowledged = n } }
        return problem
    }

    // MARK: Output

    static func kind(_ row: Row, amqp: Bool) -> String {
        amqp ? (row.direction == .inport ? "queue" : "exchange") : "topic"
    }

    static func state(_ row: Row, withGraph: Bool) -> String {
        if let problem = row.problem { return problem }
        var parts: [String] = []
        if row.exists == false { parts.append("missing") }
        if row.inGraph && !row.registered { parts.append("no participant") }
        if withGraph && row.registered && !row.inGraph { parts.append("not wired by the graph") }
        return parts.isEmpty ? "-" : parts.joined(separator: ", ")
    }

    /// The table, then the source line and the line saying what cannot be known. Every name is escaped and capped
    /// (``SafeText``) before the columns are measured, so a row stays one line and the columns stay aligned.
    package var tableLines: [String] {
        func cell(_ text: String) -> String { SafeText.escape(text, limit: NetworkStatus.cellLimit) }
        func number(_ n: Int?) -> String { n.map(String.init) ?? (amqp ? "-" : "?") }
        let header = ["NAME", "KIND", "DIR", "PORTS", "MESSAGES", "CONSUMERS", "UNACKED", "STATE"]
        var lines = [header]
        for r in rows {
            let messages = r.direction == .outport && amqp ? "-" : number(r.messages)
            let consumers = r.direction == .outport && amqp ? "-" : number(r.consumers)
            let unacked = r.direction == .outport && amqp ? "-" : r.unacknowledged.map(String.init) ?? "?"
            lines.append([cell(r.name), Self.kind(r, amqp: amqp), r.direction.rawValue,
                          r.ports.map(cell).joined(separator: ","), messages, consumers, unacked,
                          cell(Self.state(r, withGraph: withGraph))])
        }
        var out: [String] = []
        if rows.isEmpty {
            out.append("no queues: no participant is registered\(graphHint)")
        } else {
            var widths = [Int](repeating: 0, count: header.count)
            for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
            out += lines.map { l in
                l.enumerated().map { i, c in i == l.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ")
            }
        }
        out.append(sourceLine)
        out.append(unknownLine)
        return out
    }

    private var graphHint: String { " (give --graph FILE to list a graph's queues)" }

    package var json: JSONValue {
        func opt(_ n: Int?) -> JSONValue { n.map(JSONValue.int) ?? .null }
        return .object([
            "broker": .string(broker),
            "transport": .string(amqp ? "amqp" : "mqtt"),
            "participants": .string(source.rawValue),
            "queues": .array(rows.map { r in
                var o: JSONObject = [
                    "name": .string(r.name), "kind": .string(Self.kind(r, amqp: amqp)),
                    "direction": .string(r.direction.rawValue), "ports": .array(r.ports.map(JSONValue.string)),
                    "inGraph": .bool(r.inGraph), "registered": .bool(r.registered),
                    "exists": r.exists.map(JSONValue.bool) ?? .null,
                    "messages": opt(r.messages), "consumers": opt(r.consumers), "unacknowledged": opt(r.unacknowledged),
                ]
                if let p = r.problem { o["problem"] = .string(p) }
                return .object(o)
            }),
            "unknown": .string(unknownLine),
            "management": management.map(JSONValue.string) ?? .null,
        ])
    }
}
