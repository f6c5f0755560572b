/// The names that go on the wire (queues, exchanges, routing keys, reply queues, topics, topic filters), checked in
/// bytes against what the broker kind takes, before they reach a C library.
///
/// - AMQP (librabbitmq, RabbitMQ): 1 to 255 bytes of UTF-8 (an AMQP short string), no NUL (librabbitmq takes C
///   strings: the name would be cut short). A longer name makes librabbitmq refuse to encode the frame ("invalid AMQP
///   data"); before this check the transport took that for a lost connection and reconnected in a loop.
/// - MQTT (libmosquitto, Mosquitto): 1 to 65,535 bytes of UTF-8 without U+0000, and without what libmosquitto and
///   the broker refuse as malformed (control characters U+0001-U+001F and U+007F-U+009F, the non-characters
///   U+FDD0-U+FDEF and U+xFFFE/U+xFFFF): the broker drops the connection of a client that sends one. A topic to
///   publish to has no wildcard (`+`, `#`) and does not start with `$` (reserved for the broker); a filter to
///   subscribe may hold wildcards where MQTT allows them (`+` alone in a level, `#` alone in the last level).
///
/// Every entry point (discovery messages, status requests, graphs, command lines) and every transport call checks
/// with this one vocabulary; a refused name is a ``MsgFloError`` with code `.invalidArgument` whose message names
/// the rule and shows at most the first 60 characters of the name.
public enum WireName {
    /// The broker kinds, as far as names go.
    public enum Broker: Sendable, Hashable {
        case amqp, mqtt

        public init(_ scheme: BrokerURL.Scheme) { self = scheme.isAMQP ? .amqp : .mqtt }
        public init(_ url: BrokerURL) { self.init(url.scheme) }
    }

    /// What the name is used for.
    public enum Use: Sendable, Hashable {
        /// A queue, exchange or routing key (AMQP); a topic published to (MQTT).
        case name
        /// A topic filter subscribed to (MQTT wildcards allowed); on AMQP the same as `name`.
        case filter
    }

    /// The most bytes of an AMQP short string.
    public static let amqpMaximumBytes = 255
    /// The most bytes of an MQTT topic (a two-byte length prefix).
    public static let mqttMaximumBytes = 65_535

    /// Throws `.invalidArgument` when `name` cannot go on the wire of `broker` as `use`. `what` says what it is, for
    /// the message ("queue", "reply queue", "topic of outport OUT", …).
    public static func check(_ name: String, _ broker: Broker, use: Use = .name, what: String = "name") throws(MsgFloError) {
        if let why = problem(name, broker, use: use) {
            throw MsgFloError(.invalidArgument, "\(what) \(shown(name)) cannot go on the \(broker == .amqp ? "AMQP" : "MQTT") wire: \(why)")
        }
    }

    /// Whether `name` can go on the wire (see ``check(_:_:use:what:)``).
    public static func isValid(_ name: String, _ broker: Broker, use: Use = .name) -> Bool {
        problem(name, broker, use: use) == nil
    }

    /// Why `name` cannot go on the wire, or nil when it can.
    public static func problem(_ name: String, _ broker: Broker, use: Use = .name) -> String? {
        let bytes = name.utf8.count
        if bytes == 0 { return "it is empty" }
        switch broker {
        case .amqp:
            if bytes > amqpMaximumBytes { return "\(bytes) bytes, more than the \(amqpMaximumBytes) of an AMQP short string" }
            if SafeText.containsNUL(name) { return "it contains a NUL byte" }
            return nil
        case .mqtt:
            if bytes > mqttMaximumBytes { return "\(bytes) bytes, more than the \(mqttMaximumBytes) of an MQTT topic" }
            for scalar in name.unicodeScalars {
                let v = scalar.value
                if v == 0 { return "it contains a NUL character" }
                if v <= 0x1F || (v >= 0x7F && v <= 0x9F) {
                    return "it contains the control character U+\(hex(v)) (MQTT brokers refuse it as malformed UTF-8)"
                }
                if (v >= 0xFDD0 && v <= 0xFDEF) || (v & 0xFFFE) == 0xFFFE {
                    return "it contains the non-character U+\(hex(v)) (MQTT brokers refuse it as malformed UTF-8)"
                }
            }
            switch use {
            case .name:
                if name.utf8.contains(UInt8(ascii: "+")) || name.utf8.contains(UInt8(ascii: "#")) {
                    return "a topic to publish to cannot hold the wildcards + or #"
                }
                if name.utf8.first == UInt8(ascii: "$") { return "topics starting with $ are reserved for the broker" }
            case .filter:
                let levels = name.split(separator: "/", omittingEmptySubsequences: false)
                for (i, level) in levels.enumerated() {
                    if level.contains("#") && (level != "#" || i != levels.count - 1) {
                        return "# must stand alone in the last level of a topic filter"
                    }
                    if level.contains("+") && level != "+" { return "+ must stand alone in a level of a topic filter" }
                }
            }
            return nil
        }
    }

    /// The name for a message: quoted, cut at 60 characters with its size in bytes when longer.
    public static func shown(_ name: String) -> String {
        let chars = name.unicodeScalars.count
        if chars <= 60 { return "'\(name)'" }
        return "'\(String(String.UnicodeScalarView(name.unicodeScalars.prefix(60))))…' (\(name.utf8.count) bytes)"
    }

    private static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}

extension ParticipantDefinition {
    /// Checks every name of the definition that goes on the wire (port queues, the command `inqueue`) for `broker`.
    /// The error names the participant and the port.
    public func checkWireNames(_ broker: WireName.Broker) throws(MsgFloError) {
        for (kind, ports) in [("inport", inports), ("outport", outports)] {
            for p in ports {
                guard let q = p.queue, !p.hidden else { continue }
                // An inport is subscribed (MQTT: a filter), an outport is published to.
                try WireName.check(q, broker, use: kind == "inport" ? .filter : .name,
                                   what: "participant '\(id.prefix(60))' \(kind) '\(p.id.prefix(60))' queue")
            }
        }
        if let inqueue {
            try WireName.check(inqueue, broker, what: "participant '\(id.prefix(60))' inqueue")
        }
    }
}

extension Binding {
    /// Checks the binding's names for `broker`, with the exchanges derived from them on AMQP (`out-SRC` for a
    /// round-robin edge, `dead-SRC` for a dead-letter one). On MQTT the source is a filter, the target a topic.
    public func checkWireNames(_ broker: WireName.Broker) throws(MsgFloError) {
        try WireName.check(src, broker, use: .filter, what: "source of edge \(kind.rawValue)")
        try WireName.check(tgt, broker, use: broker == .mqtt && kind == .pubsub ? .name : .filter,
                           what: "target of edge \(kind.rawValue)")
        guard broker == .amqp else { return }
        switch kind {
        case .pubsub: break
        case .roundRobin: try WireName.check("out-" + src, broker, what: "round-robin exchange")
        case .deadLetter: try WireName.check("dead-" + src, broker, what: "dead-letter exchange")
        }
    }
}
