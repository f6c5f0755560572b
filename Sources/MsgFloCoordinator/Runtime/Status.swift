import Foundation
import MsgFlo

/// A picture of the network for `msgflo status`: one row per role.
package struct NetworkStatus: Sendable, Hashable {
    package struct Participant: Sendable, Hashable {
        package var id: String
        package var alive: Bool
        /// Seconds since the epoch.
        package var lastSeen: Double
    }

    package struct Row: Sendable, Hashable {
        package var role: String
        package var component: String
        package var participants: [Participant]
        package var pendingEdges: [String]
        /// Inport queue → messages waiting (AMQP only).
        package var queueDepths: [String: Int]
        /// In the daemon's graph (false: a participant seen on fbp that the graph does not name).
        package var inGraph: Bool
        /// Port → queue (AMQP) or topic (MQTT), as the role's participant announced them; empty when none has
        /// (and in the answers of daemons older than this field). For msgflo-queues.
        package var inports: [String: String] = [:]
        package var outports: [String: String] = [:]
    }

    package var source: String
    package var rows: [Row]
    /// The active instance of standby coordinators (`msgflo --standby`), which answered; nil for a lone daemon.
    package var active: String? = nil

    package init(source: String, rows: [Row]) {
        self.source = source
        self.rows = rows
    }

    package var json: JSONValue {
        var o = jsonObject
        if let active { o["active"] = .string(active) }
        return .object(o)
    }

    private var jsonObject: JSONObject {
        [
            "source": .string(source),
            "rows": .array(rows.map { r in
                .object([
                    "role": .string(r.role), "component": .string(r.component), "inGraph": .bool(r.inGraph),
                    "participants": .array(r.participants.map {
                        .object(["id": .string($0.id), "alive": .bool($0.alive), "lastSeen": .double($0.lastSeen)])
                    }),
                    "pendingEdges": .array(r.pendingEdges.map(JSONValue.string)),
                    "queueDepths": .object(JSONObject(r.queueDepths.mapValues(JSONValue.int))),
                    "inports": .object(JSONObject(r.inports.mapValues(JSONValue.string))),
                    "outports": .object(JSONObject(r.outports.mapValues(JSONValue.string))),
                ])
            }),
        ]
    }

    package init(json: JSONValue) throws(MsgFloError) {
        guard let rows = json["rows"]?.arrayValue else { throw MsgFloError(.invalidMessage, "status reply without rows") }
        self.source = json["source"]?.stringValue ?? "daemon"
        self.active = json["active"]?.stringValue
        self.rows = rows.map { r in
            Row(role: r["role"]?.stringValue ?? "?", component: r["component"]?.stringValue ?? "",
                participants: (r["participants"]?.arrayValue ?? []).map {
                    Participant(id: $0["id"]?.stringValue ?? "?", alive: $0["alive"]?.boolValue ?? false,
                                lastSeen: $0["lastSeen"]?.doubleValue ?? 0)
                },
                pendingEdges: (r["pendingEdges"]?.arrayValue ?? []).compactMap(\.stringValue),
                queueDepths: (r["queueDepths"]?.objectValue ?? [:]).compactMapValues(\.intValue),
                inGraph: r["inGraph"]?.boolValue ?? true,
                inports: (r["inports"]?.objectValue ?? [:]).compactMapValues(\.stringValue),
                outports: (r["outports"]?.objectValue ?? [:]).compactMapValues(\.stringValue))
        }
    }

    /// The table, as `msgflo status` prints it. Names come from participants: each cell is escaped and capped
    /// (``SafeText``), so a row stays one line and the table stays a table.
    package func table(now: Double = Date().timeIntervalSince1970) -> String {
        func cell(_ text: String) -> String { SafeText.escape(text, limit: Self.cellLimit) }
        let header = ["ROLE", "COMPONENT", "PARTICIPANTS", "STATE", "LAST SEEN", "PENDING EDGES", "QUEUE DEPTH"]
        var lines: [[String]] = [header]
        for r in rows {
            let alive = r.participants.filter(\.alive).count
            let state = r.participants.isEmpty ? "pending" : alive > 0 ? (alive == r.participants.count ? "alive" : "alive (\(r.participants.count - alive) lost)") : "lost"
            let last = r.participants.map(\.lastSeen).max().map { Self.ago(now - $0) } ?? "never"
            let depth = r.queueDepths.isEmpty ? "-" : r.queueDepths.sorted { $0.key < $1.key }.map { "\(cell($0.key))=\($0.value)" }.joined(separator: " ")
            lines.append([cell(r.role), r.component.isEmpty ? "-" : cell(r.component),
                          r.participants.isEmpty ? "-" : r.participants.map { cell($0.id) }.joined(separator: ","),
                          state, last, r.pendingEdges.isEmpty ? "-" : r.pendingEdges.map(cell).joined(separator: "; "),
                          depth])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
        let table = lines.map { l in
            l.enumerated().map { i, c in i == l.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
        guard let active else { return table }
        return "active coordinator: \(cell(active)) (standby instances wait)\n" + table
    }

    /// A definition's ports that have a queue, port id → queue.
    package static func ports(_ ports: [PortDefinition]) -> [String: String] {
        var out: [String: String] = [:]
        for p in ports { if let q = p.queue { out[p.id] = q } }
        return out
    }

    /// At most this many bytes of one name in a table cell.
    package static let cellLimit = 200

    static func ago(_ s: Double) -> String {
        if s < 1 { return "just now" }
        if s < 120 { return "\(Int(s)) s ago" }
        if s < 7200 { return "\(Int(s / 60)) min ago" }
        return "\(Int(s / 3600)) h ago"
    }
}

/// The request/reply on the broker by which `msgflo status` asks a running daemon.
///
/// The tool declares a private, non-durable reply queue and sends `{"reply": Q, "sent": T}` into the inport queue
/// `msgflo.status` (declared non-durable and auto-deleted by the daemon, so a request with no daemon running goes
/// nowhere); the daemon answers into `Q` through the default exchange (AMQP) or topic `Q` (MQTT). A reply to a queue
/// that is gone is dropped by the broker, never an error. Chosen over a state file because it works from any
/// machine that reaches the broker, and needs no shared directory.
package enum StatusProtocol {
    package static let queue = "msgflo.status"

    package static func request(reply: String, now: Double) -> Message {
        Message(json: ["reply": .string(reply), "sent": .double(now)])
    }

    /// The reply queue of a request, or nil when it is malformed or stale (older than `maxAge` seconds).
    package static func replyQueue(_ m: Message, now: Double, maxAge: Double = 30) -> String? {
        guard let json = m.json, let q = json["reply"]?.stringValue, !q.isEmpty else { return nil }
        if let sent = json["sent"]?.doubleValue, now - sent > maxAge { return nil }
        return q
    }

    /// The reply queue of a request, checked in bytes against what `broker` takes (an AMQP short string is at most
    /// 255 bytes: "é" × 200 is 400): nil when malformed or stale, an error when the name cannot go on the wire.
    package static func replyQueue(_ m: Message, now: Double, maxAge: Double = 30,
                                  broker: WireName.Broker) -> Result<String?, MsgFloError> {
        guard let q = replyQueue(m, now: now, maxAge: maxAge) else { return .success(nil) }
        do throws(MsgFloError) {
            try WireName.check(q, broker, what: "reply queue")
        } catch {
            return .failure(error)
        }
        return .success(q)
    }
}
