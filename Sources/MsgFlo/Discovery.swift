/// The discovery queue (AMQP) or topic (MQTT) every participant announces itself on.
public let discoveryQueue = "fbp"

/// The discovery envelope: `{"protocol":"discovery","command":"participant","payload":P}`.
public enum Discovery {
    /// The biggest discovery message a coordinator reads; anything larger is refused unparsed.
    public static let maximumMessageSize = 1 << 20

    public static func message(for definition: ParticipantDefinition) -> Message {
        Message(json: envelope(definition))
    }

    public static func envelope(_ definition: ParticipantDefinition) -> JSONValue {
        ["protocol": "discovery", "command": "participant", "payload": definition.json]
    }

    /// Reads a message from the `fbp` queue. Every way it can be wrong gives a one-line error.
    public static func parse(_ message: Message) throws(MsgFloError) -> ParticipantDefinition {
        if message.count > maximumMessageSize {
            throw MsgFloError(.invalidMessage, "discovery message of \(message.count) bytes is larger than the \(maximumMessageSize) allowed")
        }
        let json = try message.decodeJSON()
        guard case .object(let o) = json else {
            throw MsgFloError(.invalidMessage, "discovery message: expected an object, got \(json.kindName)")
        }
        guard o["protocol"]?.stringValue == "discovery" else {
            throw MsgFloError(.invalidMessage, "discovery message: 'protocol' is \(o["protocol"]?.serialized.prefix(40) ?? "missing"), expected \"discovery\"")
        }
        guard o["command"]?.stringValue == "participant" else {
            throw MsgFloError(.invalidMessage, "discovery message: 'command' is \(o["command"]?.serialized.prefix(40) ?? "missing"), expected \"participant\"")
        }
        guard let payload = o["payload"] else {
            throw MsgFloError(.invalidMessage, "discovery message: missing 'payload'")
        }
        return try ParticipantDefinition(json: payload)
    }
}

/// One end of a coordinator command: a port of the participant, and a queue elsewhere.
public struct CoordinatorCommand: Sendable, Hashable {
    public var command: CoordinatorCommandName
    /// The participant's own port (`tgt.port` for in-port commands, `src.port` for out-port commands).
    public var port: String
    /// The port index (`index` in the payload), if any.
    public var index: Int?
    /// The other queue (`src.queue` for in-port commands, `tgt.queue` for out-port commands).
    public var queue: String
    public var queueOptions: JSONValue?
    public var graph: String?
    public var metadata: JSONValue?

    public init(_ command: CoordinatorCommandName, port: String, queue: String, index: Int? = nil,
                queueOptions: JSONValue? = nil, graph: String? = nil, metadata: JSONValue? = nil) {
        self.command = command
        self.port = port
        self.queue = queue
        self.index = index
        self.queueOptions = queueOptions
        self.graph = graph
        self.metadata = metadata
    }

    private var isInport: Bool { command == .connectInport || command == .disconnectInport }

    /// `{"protocol":"msgflo","command":C,"payload":P}` with msgflo's payload shape.
    public var json: JSONValue {
        var portEnd: JSONObject = ["port": .string(port)]
        if let index { portEnd["index"] = .int(index) }
        var queueEnd: JSONObject = ["queue": .string(queue)]
        queueEnd["options"] = queueOptions ?? .object([:])
        var payload: JSONObject = isInport
            ? ["src": .object(queueEnd), "tgt": .object(portEnd)]
            : ["src": .object(portEnd), "tgt": .object(queueEnd)]
        if let graph { payload["graph"] = .string(graph) }
        payload["metadata"] = metadata ?? .object([:])
        return ["protocol": "msgflo", "command": .string(command.rawValue), "payload": .object(payload)]
    }

    public var message: Message { Message(json: json) }

    /// Reads a command sent to a participant's inqueue.
    public init(parsing message: Message) throws(MsgFloError) {
        let json = try message.decodeJSON()
        guard json["protocol"]?.stringValue == "msgflo" else {
            throw MsgFloError(.invalidMessage, "coordinator command: 'protocol' must be \"msgflo\"")
        }
        guard let name = json["command"]?.stringValue else {
            throw MsgFloError(.invalidMessage, "coordinator command: missing 'command'")
        }
        guard let command = CoordinatorCommandName(rawValue: name) else {
            throw MsgFloError(.unsupported, "coordinator command '\(name.prefix(60))' is not supported")
        }
        guard let payload = json["payload"], case .object = payload else {
            throw MsgFloError(.invalidMessage, "coordinator command \(name): missing 'payload'")
        }
        let inport = command == .connectInport || command == .disconnectInport
        let portEnd = inport ? payload["tgt"] : payload["src"]
        let queueEnd = inport ? payload["src"] : payload["tgt"]
        guard let port = portEnd?["port"]?.stringValue else {
            throw MsgFloError(.invalidMessage, "coordinator command \(name): missing \(inport ? "tgt" : "src").port")
        }
        guard let queue = queueEnd?["queue"]?.stringValue, !queue.isEmpty else {
            throw MsgFloError(.invalidMessage, "coordinator command \(name): missing \(inport ? "src" : "tgt").queue")
        }
        self.init(command, port: port, queue: queue, index: portEnd?["index"]?.intValue,
                  queueOptions: queueEnd?["options"], graph: payload["graph"]?.stringValue,
                  metadata: payload["metadata"])
    }
}
