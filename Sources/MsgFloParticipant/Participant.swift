import CoreMetrics
import MsgFlo

/// A port of a participant, as its author declares it. A string literal is a port of type `any` with the default
/// queue: `inports: ["in"]`.
public struct Port: Sendable, Hashable, ExpressibleByStringLiteral {
    public var id: String
    public var type: String
    public var description: String?
    /// The queue (AMQP) or topic (MQTT). Nil: the default, `<role>.<ID UPPER-CASED>`.
    public var queue: String?
    /// A hidden port has no queue and is left out of the discovery message (for sources and sinks that talk to
    /// the world, not to the broker). Sending on a hidden outport does nothing.
    public var hidden: Bool
    public var schema: String?
    /// msgflo port options, passed on in the discovery message; `{"persistent": false}` declares the queue
    /// non-durable and auto-deleted.
    public var options: JSONValue?

    public init(_ id: String, type: String = "any", description: String? = nil, queue: String? = nil,
                hidden: Bool = false, schema: String? = nil, options: JSONValue? = nil) {
        self.id = id
        self.type = type
        self.description = description
        self.queue = queue
        self.hidden = hidden
        self.schema = schema
        self.options = options
    }

    public init(stringLiteral value: String) { self.init(value) }

    /// The port as it appears in the discovery message of a participant playing `role`.
    public func definition(role: String) -> PortDefinition {
        PortDefinition(id: id, type: type,
                       queue: hidden ? nil : (queue ?? PortDefinition.defaultQueue(role: role, port: id)),
                       description: description, schema: schema, hidden: hidden, options: options)
    }

    var queueOptions: QueueOptions {
        QueueOptions(persistent: options?["persistent"]?.boolValue ?? true,
                     queueType: options?["queueType"]?.stringValue.flatMap(QueueType.init(text:)))
    }

    /// The port option `pool`: `true` (the role's pool) or a pool name; nil when absent or false.
    func poolOption(role: String) -> String? {
        switch options?["pool"] {
        case .bool(true)?: role
        case .string(let name)? where !name.isEmpty: name
        default: nil
        }
    }
}

/// A participant: what it is (component, label, icon, ports) and what it does with each message.
///
/// ```swift
/// let uppercase = Participant(component: "Uppercase", inports: ["in"], outports: ["out"]) { port, msg, ctx in
///     try await ctx.send("out", .string(msg.text!.uppercased()))
/// }
/// ```
///
/// The handler is called for each message arriving on an inport, concurrently up to the prefetch limit. It may send
/// on any outport any number of times. Returning acknowledges the message; throwing, or calling
/// ``ProcessContext/nack()``, dead-letters it, and when the participant has an outport named `error` the error is
/// sent there as `{"message": "...", "inport": "...", "input": <the message>}`.
///
/// A source sends on its own: from a `run` body that lives as long as the participant, or from a task that a
/// message (typically an IIP) starts with ``ParticipantContext/replaceTask(_:_:)``.
public struct Participant: Sendable {
    public typealias Handler = @Sendable (_ inport: String, _ message: Message, _ context: ProcessContext) async throws -> Void
    public typealias Body = @Sendable (_ context: ParticipantContext) async throws -> Void

    public var component: String
    public var label: String
    public var icon: String
    public var inports: [Port]
    public var outports: [Port]
    public var handler: Handler
    /// Runs once the participant is announced, until it stops (then its task is cancelled). For sources.
    public var body: Body?

    public init(component: String, label: String? = nil, icon: String = "file-word-o",
                inports: [Port] = [], outports: [Port] = [], handler: @escaping Handler = { _, _, _ in },
                run body: Body? = nil) {
        self.component = component
        self.label = label ?? component
        self.icon = icon
        self.inports = inports
        self.outports = outports
        self.body = body
        self.handler = handler
    }

    /// True when the participant has an outport named `error` (msgflo's convention for failures).
    /// This participant with the queues of `queues` (port id → queue name) given to those ports, which become
    /// visible if they were hidden (`ParticipantOptions.queues`, `--queue port=QUEUE`). A port it does not have is an
    /// error.
    public func naming(_ queues: [String: String]) throws -> Participant {
        var named = self
        for (port, queue) in queues {
            if let i = named.inports.firstIndex(where: { $0.id == port }) {
                named.inports[i].queue = queue
                named.inports[i].hidden = false
            } else if let i = named.outports.firstIndex(where: { $0.id == port }) {
                named.outports[i].queue = queue
                named.outports[i].hidden = false
            } else {
                throw MsgFloError(.invalidArgument, "\(component) has no port '\(port)' to give queue '\(queue)'")
            }
        }
        return named
    }

    public var hasErrorPort: Bool { outports.contains { $0.id == "error" } }

    /// The discovery payload of this participant playing `role` as process `id`, with this project's extensions.
    public func definition(role: String, id: String, heartbeat: Double?, inqueue: String?) -> ParticipantDefinition {
        ParticipantDefinition(
            id: id, role: role, component: component, label: label, icon: icon,
            inports: inports.map { $0.definition(role: role) },
            outports: outports.map { $0.definition(role: role) },
            heartbeat: heartbeat, inqueue: inqueue,
            capabilities: inqueue == nil ? nil : CoordinatorCommandName.allCases.map(\.rawValue) + ["pause", "resume"])
    }
}

/// How a participant runs.
public struct ParticipantOptions: Sendable {
    /// Unacknowledged messages in hand at once per consumed queue, and so handlers running at once. msgflo-nodejs: 2.
    public var prefetch: Int
    /// The heartbeat period in seconds: announcements go out every `period / 2.2` s, and the discovery message
    /// carries it as `heartbeat`. msgflo's default is 60.
    public var discoveryPeriod: Double
    /// Initial information packets, `{"port": data}`, handed to the handler at start (after the announcement).
    public var iips: JSONObject
    /// How long a graceful stop waits for handlers in hand before it gives up on them (they are then redelivered).
    public var drainTimeout: Duration
    /// The discovery `id`; default `<role>-<8 random hex digits>`, stable for the process's lifetime.
    public var id: String?
    /// Explicit queues per port id (`--queue in=IN`), over the component's own.
    public var queues: [String: String]
    /// Where handlers run. True (the default): on the transport's I/O thread, between its network reads and writes
    /// (``Transport/preferredExecutor``), like the event loop of msgflo's Node.js and Python SDKs. A message then
    /// reaches its handler, and the handler's sends reach the socket, without any thread hand-over. Handlers may
    /// await anything, but must not block the thread or compute for long: that holds up every message of the
    /// connection. False: on Swift's global executor, for handlers that block or run long computations.
    public var handlersOnTransportThread: Bool
    /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this port while ``ParticipantService`` runs (0: any
    /// free port; `--metrics-port`). Nil (the default): no server, no metrics.
    public var metricsPort: Int?
    /// Where the participant's metrics go (messages in and out per port, handler seconds, errors, nacks,
    /// reconnects). ``ParticipantService`` sets it when ``metricsPort`` is given; set it yourself to record into your
    /// own swift-metrics backend. Nil: nothing is recorded (no cost on the message path beyond one nil check).
    public var metrics: (any MetricsFactory)?
    /// MQTT: consume every inport as a member of this worker pool (`--pool`: the role's name; `MSGFLO_POOL`), so
    /// that the processes of one role share its messages, each to one of them. AMQP queues are shared anyway.
    public var pool: String? = nil

    public init(prefetch: Int = 2, discoveryPeriod: Double = 60, iips: JSONObject = [:],
                drainTimeout: Duration = .seconds(30), id: String? = nil, queues: [String: String] = [:],
                handlersOnTransportThread: Bool = true) {
        self.handlersOnTransportThread = handlersOnTransportThread
        self.prefetch = max(1, prefetch)
        self.discoveryPeriod = discoveryPeriod
        self.iips = iips
        self.drainTimeout = drainTimeout
        self.id = id
        self.queues = queues
    }

    /// The default discovery period: `MSGFLO_DISCOVERY_PERIOD` when it is a positive number, else 60.
    public static func discoveryPeriod(environment: [String: String]) -> Double {
        if let text = environment["MSGFLO_DISCOVERY_PERIOD"], let v = Double(text), v > 0, v.isFinite { return v }
        return 60
    }
}

/// The name of the queue on which a participant process takes coordinator commands: `<id>.MSGFLO`, one per
/// process (several processes may share a role, and each must get every command). It is declared non-persistent
/// (AMQP: non-durable, auto-deleted) so that it disappears with its process.
public func commandQueue(forParticipantID id: String) -> String { id + ".MSGFLO" }
