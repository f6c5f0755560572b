import Synchronization

/// A port as it appears in a participant's discovery message.
public struct PortDefinition: Sendable, Hashable {
    public var id: String
    public var type: String
    /// The queue (AMQP) or topic (MQTT). Nil before a role has been applied, or for a hidden port.
    public var queue: String?
    public var description: String?
    public var schema: String?
    public var hidden: Bool
    /// Free-form port options (msgflo passes e.g. `persistent` here).
    public var options: JSONValue?

    public init(id: String, type: String = "any", queue: String? = nil, description: String? = nil,
                schema: String? = nil, hidden: Bool = false, options: JSONValue? = nil) {
        self.id = id
        self.type = type
        self.queue = queue
        self.description = description
        self.schema = schema
        self.hidden = hidden
        self.options = options
    }

    /// msgflo's default queue name: `<role>.<PORT ID UPPER-CASED>`, role case kept.
    public static func defaultQueue(role: String, port: String) -> String {
        "\(role).\(port.uppercased())"
    }
}

/// The commands a participant may take on its `inqueue` (this project's extension).
public enum CoordinatorCommandName: String, Sendable, Hashable, CaseIterable {
    case connectInport = "connectinport"
    case connectOutport = "connectoutport"
    case disconnectInport = "disconnectinport"
    case disconnectOutport = "disconnectoutport"
}

/// The payload of a discovery message: who a participant is and which queues its ports use.
///
/// A value, stored as one shared reference (copy on write) plus its `timestamp`: the coordinator copies
/// definitions a lot (every re-announcement of a participant is one, found in its discovery cache), and a copy then
/// costs one retain instead of one per field. Two copies of one announcement compare equal at the first pointer.
public struct ParticipantDefinition: Sendable, Hashable {
    /// Everything but the timestamp.
    private struct Fields: Sendable {
        // (The id and the heartbeat first: what the coordinator reads of every announcement, in one cache line
        // with the id's hash.)
        var id: String
        var heartbeat: Double?
        var role: String
        var component: String
        var label: String
        var icon: String
        var inports: [PortDefinition]
        var outports: [PortDefinition]
        var inqueue: String?
        var capabilities: [String]?
    }

    /// Immutable: a setter makes a new one, so copies never see each other's changes.
    private final class Storage: Sendable {
        /// The id's hash in this process, worked out once: the coordinator looks a participant up by id for every
        /// announcement, and most announcements repeat a definition it already holds.
        let idHash: Int
        /// Where a registry last put this very definition (-1: nowhere): a hint it checks, not a fact (see
        /// ``ParticipantDefinition/registrySlot``).
        let slot = Atomic<Int>(-1)
        let fields: Fields
        init(_ fields: Fields) {
            idHash = fields.id.hashValue
            self.fields = fields
        }
    }

    private var storage: Storage

    private mutating func set<T>(_ field: WritableKeyPath<Fields, T>, _ value: T) {
        var changed = storage.fields
        changed[keyPath: field] = value
        storage = Storage(changed)
    }

    public var id: String { get { storage.fields.id } set { set(\.id, newValue) } }
    /// `id.hashValue`, kept from when the definition was made.
    package var idHash: Int { storage.idHash }

    /// The slot in which a participant registry last stored this definition (-1: none), kept with the definition's
    /// shared storage, so that a re-announcement found in the coordinator's discovery cache (the very same storage)
    /// leads to its registry entry without a lookup by id. A hint only: another registry (a copy, another
    /// coordinator in the process) may have written it since, so the registry checks that the slot holds this same
    /// storage (``isSameStorage(_:)``) before trusting it.
    package var registrySlot: Int {
        get { storage.slot.load(ordering: .relaxed) }
        nonmutating set { storage.slot.store(newValue, ordering: .relaxed) }
    }

    /// Both are copies of one definition (not merely equal ones).
    package func isSameStorage(_ other: ParticipantDefinition) -> Bool { storage === other.storage }
    public var role: String { get { storage.fields.role } set { set(\.role, newValue) } }
    public var component: String { get { storage.fields.component } set { set(\.component, newValue) } }
    public var label: String { get { storage.fields.label } set { set(\.label, newValue) } }
    public var icon: String { get { storage.fields.icon } set { set(\.icon, newValue) } }
    public var inports: [PortDefinition] { get { storage.fields.inports } set { set(\.inports, newValue) } }
    public var outports: [PortDefinition] { get { storage.fields.outports } set { set(\.outports, newValue) } }
    /// This project's extension: the announcement period in seconds; lost after that long in silence.
    public var heartbeat: Double? { get { storage.fields.heartbeat } set { set(\.heartbeat, newValue) } }
    /// This project's extension: where the participant takes coordinator commands.
    public var inqueue: String? { get { storage.fields.inqueue } set { set(\.inqueue, newValue) } }
    /// This project's extension: the coordinator commands the participant supports.
    public var capabilities: [String]? { get { storage.fields.capabilities } set { set(\.capabilities, newValue) } }
    /// This project's extension: when this announcement was sent, in seconds since the Unix epoch by the sender's
    /// clock (`timestamp` on the wire, in milliseconds). Not part of the participant's identity: two announcements
    /// that differ only in it are equal. Kept beside the shared storage: setting it copies nothing.
    public var timestamp: Double?

    public init(id: String, role: String, component: String, label: String = "", icon: String = "file-word-o",
                inports: [PortDefinition] = [], outports: [PortDefinition] = [], heartbeat: Double? = nil,
                inqueue: String? = nil, capabilities: [String]? = nil) {
        storage = Storage(Fields(id: id, heartbeat: heartbeat, role: role, component: component, label: label, icon: icon,
                                 inports: inports, outports: outports, inqueue: inqueue, capabilities: capabilities))
    }

    public static func == (a: ParticipantDefinition, b: ParticipantDefinition) -> Bool {
        if a.storage === b.storage { return true }
        let x = a.storage.fields, y = b.storage.fields
        return x.id == y.id && x.role == y.role && x.component == y.component && x.label == y.label && x.icon == y.icon
            && x.inports == y.inports && x.outports == y.outports && x.heartbeat == y.heartbeat
            && x.inqueue == y.inqueue && x.capabilities == y.capabilities
    }

    public func hash(into h: inout Hasher) {
        h.combine(id)
        h.combine(role)
        h.combine(component)
        h.combine(inports)
        h.combine(outports)
    }

    public func inport(_ id: String) -> PortDefinition? { inports.first { $0.id == id } }
    public func outport(_ id: String) -> PortDefinition? { outports.first { $0.id == id } }

    public func supports(_ command: CoordinatorCommandName) -> Bool {
        inqueue != nil && (capabilities?.contains(command.rawValue) ?? false)
    }
}

// MARK: - JSON form

extension PortDefinition {
    /// The JSON object of the discovery message. Key names are msgflo's.
    public var json: JSONValue {
        var o: JSONObject = ["id": .string(id), "type": .string(type), "hidden": .bool(hidden)]
        if let queue { o["queue"] = .string(queue) }
        if let description { o["description"] = .string(description) }
        if let schema { o["schema"] = .string(schema) }
        if let options { o["options"] = options }
        return .object(o)
    }

    /// Reads a port of a discovery message. `where` names the place for the error message.
    public init(json: JSONValue, at place: String) throws(MsgFloError) {
        guard case .object(let o) = json else {
            throw MsgFloError(.invalidMessage, "\(place): expected an object, got \(json.kindName)")
        }
        guard let id = o["id"]?.stringValue, !id.isEmpty else {
            throw MsgFloError(.invalidMessage, "\(place): missing or non-string 'id'")
        }
        func optionalString(_ key: String) throws(MsgFloError) -> String? {
            switch o[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let other?: throw MsgFloError(.invalidMessage, "\(place) '\(id)': '\(key)' must be a string, got \(other.kindName)")
            }
        }
        self.init(id: id)
        self.type = try optionalString("type") ?? "any"
        self.queue = try optionalString("queue")
        self.description = try optionalString("description")
        // msgflo allows a schema URL; some send an object. Keep a string form either way.
        if case .object = o["schema"] ?? .null { self.schema = o["schema"]!.serialized } else {
            self.schema = try optionalString("schema")
        }
        switch o["hidden"] {
        case nil, .null?: self.hidden = false
        case .bool(let b)?: self.hidden = b
        case let other?: throw MsgFloError(.invalidMessage, "\(place) '\(id)': 'hidden' must be a boolean, got \(other.kindName)")
        }
        self.options = o["options"]
    }
}

extension ParticipantDefinition {
    /// The `payload` of the discovery message. Hidden ports and ports without a queue are left out.
    public var json: JSONValue {
        var o: JSONObject = [
            "id": .string(id), "role": .string(role), "component": .string(component),
            "label": .string(label), "icon": .string(icon),
            "inports": .array(inports.filter { !$0.hidden && $0.queue != nil }.map(\.json)),
            "outports": .array(outports.filter { !$0.hidden && $0.queue != nil }.map(\.json)),
        ]
        if let heartbeat { o["heartbeat"] = heartbeat.rounded() == heartbeat ? .int(Int(heartbeat)) : .double(heartbeat) }
        if let inqueue { o["inqueue"] = .string(inqueue) }
        if let capabilities { o["capabilities"] = .array(capabilities.map(JSONValue.string)) }
        if let timestamp, timestamp.isFinite, timestamp >= 0 { o["timestamp"] = .int(Int((timestamp * 1000).rounded())) }
        return .object(o)
    }

    /// Reads and validates a discovery payload. Required: id, role, component, inports, outports (as msgflo's
    /// coordinator requires). The error says which field is wrong.
    public init(json: JSONValue) throws(MsgFloError) {
        guard case .object(let o) = json else {
            throw MsgFloError(.invalidMessage, "discovery payload: expected an object, got \(json.kindName)")
        }
        func requiredString(_ key: String) throws(MsgFloError) -> String {
            switch o[key] {
            case .string(let s)? where !s.isEmpty: return s
            case .string?: throw MsgFloError(.invalidMessage, "discovery payload: '\(key)' is empty")
            case nil: throw MsgFloError(.invalidMessage, "discovery payload: missing '\(key)'")
            case let other?: throw MsgFloError(.invalidMessage, "discovery payload: '\(key)' must be a string, got \(other.kindName)")
            }
        }
        let id = try requiredString("id")
        func optionalString(_ key: String) throws(MsgFloError) -> String? {
            switch o[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let other?: throw MsgFloError(.invalidMessage, "participant '\(id)': '\(key)' must be a string, got \(other.kindName)")
            }
        }
        func ports(_ key: String) throws(MsgFloError) -> [PortDefinition] {
            switch o[key] {
            case .array(let a)?:
                var out: [PortDefinition] = []
                out.reserveCapacity(a.count)
                for (n, p) in a.enumerated() {
                    out.append(try PortDefinition(json: p, at: "participant '\(id)' \(key)[\(n)]"))
                }
                return out
            case nil: throw MsgFloError(.invalidMessage, "participant '\(id)': missing '\(key)'")
            case let other?: throw MsgFloError(.invalidMessage, "participant '\(id)': '\(key)' must be an array, got \(other.kindName)")
            }
        }
        // Read into locals, then made at once (each setter would make a new storage).
        let role = try requiredString("role"), component = try requiredString("component")
        let label = try optionalString("label") ?? ""
        let icon = try optionalString("icon") ?? ""
        let inports = try ports("inports")
        let outports = try ports("outports")
        let heartbeat: Double?
        switch o["heartbeat"] {
        case nil, .null?: heartbeat = nil
        case let v? where v.doubleValue != nil && v.doubleValue! > 0 && v.doubleValue!.isFinite: heartbeat = v.doubleValue
        case let other?: throw MsgFloError(.invalidMessage, "participant '\(id)': 'heartbeat' must be a positive number, got \(other.serialized.prefix(40))")
        }
        let inqueue = try optionalString("inqueue")
        let capabilities: [String]?
        switch o["capabilities"] {
        case nil, .null?: capabilities = nil
        case .array(let a)?:
            var caps: [String] = []
            for c in a {
                guard let s = c.stringValue else {
                    throw MsgFloError(.invalidMessage, "participant '\(id)': 'capabilities' must hold strings")
                }
                caps.append(s)
            }
            capabilities = caps
        case let other?: throw MsgFloError(.invalidMessage, "participant '\(id)': 'capabilities' must be an array, got \(other.kindName)")
        }
        self.init(id: id, role: role, component: component, label: label, icon: icon, inports: inports,
                  outports: outports, heartbeat: heartbeat, inqueue: inqueue, capabilities: capabilities)
        switch o["timestamp"] {
        case nil, .null?: self.timestamp = nil
        case let v? where v.doubleValue != nil && v.doubleValue! >= 0 && v.doubleValue! < 1e15:
            self.timestamp = v.doubleValue! / 1000
        case let other?: throw MsgFloError(.invalidMessage, "participant '\(id)': 'timestamp' must be milliseconds since 1970, got \(other.serialized.prefix(40))")
        }
    }
}

extension JSONValue {
    /// A short name of the value's kind, for error messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
