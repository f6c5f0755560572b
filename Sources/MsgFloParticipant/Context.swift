import Logging
import MsgFlo
import Synchronization

/// What a running participant offers its code: who it is, sending on its outports, and tasks that live as long as
/// it does. Sendable; keep it as long as you like (a source keeps it in its timer task).
public struct ParticipantContext: Sendable {
    let runtime: RunningParticipant

    public var role: String { runtime.definition.role }
    public var id: String { runtime.definition.id }
    public var definition: ParticipantDefinition { runtime.definition }
    public var logger: Logger { runtime.logger }

    /// Sends a JSON value on an outport.
    public func send(_ outport: String, _ value: JSONValue) async throws {
        try await runtime.send(outport, Message(json: value))
    }

    /// Sends a message (bytes as they are) on an outport.
    public func send(_ outport: String, _ message: Message) async throws {
        try await runtime.send(outport, message)
    }

    /// Sends UTF-8 text as it is (not JSON-quoted) on an outport.
    public func send(_ outport: String, text: String) async throws {
        try await runtime.send(outport, Message(text: text))
    }

    /// Sends raw bytes on an outport.
    public func send(_ outport: String, bytes: some Sequence<UInt8>) async throws {
        try await runtime.send(outport, Message(bytes))
    }

    /// Starts `body` as a task that lives until the participant stops, cancelling the task of the same name
    /// started before (e.g. a timer reconfigured by a new IIP). The body's errors are logged.
    public func replaceTask(_ name: String, _ body: @escaping @Sendable (ParticipantContext) async throws -> Void) {
        runtime.replaceTask(name, body)
    }

    /// Cancels the task of that name, if any.
    public func cancelTask(_ name: String) { runtime.replaceTask(name, nil) }
}

/// What the handler gets with one message: sending on outports, answering the request, and settling the message.
///
/// What a handler sends carries the input's correlation id, reply-to and tracing headers (`traceparent`,
/// `tracestate`, `baggage`, `x-…`) forward, so the last participant of a flow can answer the caller; properties
/// set on the message sent override them field by field. ``send(_:_:forwarding:)`` with `forwarding: false` sends
/// only the message's own properties.
public final class ProcessContext: Sendable {
    public let participant: ParticipantContext
    /// The inport the message arrived on.
    public let inport: String
    /// The queue it was taken from (the inport's own, or one added by `connectinport`); nil for an IIP.
    public let queue: String?
    /// The properties of the message being handled.
    public let properties: MessageProperties
    let delivery: Delivery?
    /// 0: open, 1: acked, 2: nacked.
    private let settled = Atomic<UInt8>(0)

    init(participant: ParticipantContext, inport: String, queue: String?, delivery: Delivery?,
         input: MessageProperties = MessageProperties()) {
        self.participant = participant
        self.inport = inport
        self.queue = queue
        self.delivery = delivery
        self.properties = input
    }

    public var role: String { participant.role }

    /// `message` with the input's forwarded properties under its own.
    func forwarding(_ message: Message) -> Message {
        // Nothing to carry forward (most messages): no properties built per send.
        if properties.correlationID == nil && properties.replyTo == nil && properties.headers.isEmpty { return message }
        let forwarded = properties.forwarded
        if forwarded.isEmpty { return message }
        var m = message
        m.properties = message.properties.overriding(forwarded)
        return m
    }

    public func send(_ outport: String, _ value: JSONValue) async throws {
        try await participant.runtime.send(outport, forwarding(Message(json: value)))
    }
    public func send(_ outport: String, _ message: Message) async throws {
        try await participant.runtime.send(outport, forwarding(message))
    }
    /// Sends with the input's properties carried forward (`forwarding: true`, what the other sends do) or not.
    public func send(_ outport: String, _ message: Message, forwarding: Bool) async throws {
        try await participant.runtime.send(outport, forwarding ? self.forwarding(message) : message)
    }
    public func send(_ outport: String, text: String) async throws {
        try await participant.runtime.send(outport, forwarding(Message(text: text)))
    }
    public func send(_ outport: String, bytes: some Sequence<UInt8>) async throws {
        try await participant.runtime.send(outport, forwarding(Message(bytes)))
    }
    /// Sends a Codable value as JSON, its keys in declaration order.
    public func send<T: Encodable>(_ outport: String, _ value: T) async throws {
        try await send(outport, try Message(encoding: value))
    }

    /// Whether the message being handled asks for an answer (it has a reply-to).
    public var canReply: Bool { properties.replyTo != nil }

    /// Answers the request: sends `message` to the input's reply-to, with its correlation id and tracing headers
    /// (the message's own properties override them). Returns false, sending nothing, when the input has no
    /// reply-to (it was no request). A caller that has gone is no error: the broker drops the answer.
    @discardableResult
    public func reply(_ message: Message) async throws -> Bool {
        guard let replyTo = properties.replyTo else { return false }
        var m = forwarding(message)
        m.properties.replyTo = message.properties.replyTo
        try await participant.runtime.send(toQueue: replyTo, m)
        return true
    }
    @discardableResult
    public func reply(_ value: JSONValue) async throws -> Bool { try await reply(Message(json: value)) }
    @discardableResult
    public func reply(text: String) async throws -> Bool { try await reply(Message(text: text)) }
    @discardableResult
    public func reply<T: Encodable>(_ value: T) async throws -> Bool { try await reply(try Message(encoding: value)) }

    /// Acknowledges the message now, before the handler returns. Later settling does nothing.
    public func ack() {
        if settled.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged { delivery?.ack() }
    }

    /// Refuses the message: it goes to the dead-letter exchange (AMQP). The handler may go on and return normally.
    public func nack() {
        if settled.compareExchange(expected: 0, desired: 2, ordering: .relaxed).exchanged { delivery?.nack() }
    }

    var isNacked: Bool { settled.load(ordering: .relaxed) == 2 }
}
