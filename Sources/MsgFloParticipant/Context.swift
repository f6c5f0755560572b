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

/// What the handler gets with one message: sending on outports, and settling the message.
public final class ProcessContext: Sendable {
    public let participant: ParticipantContext
    /// The inport the message arrived on.
    public let inport: String
    /// The queue it was taken from (the inport's own, or one added by `connectinport`); nil for an IIP.
    public let queue: String?
    let delivery: Delivery?
    /// 0: open, 1: acked, 2: nacked.
    private let settled = Atomic<UInt8>(0)

    init(participant: ParticipantContext, inport: String, queue: String?, delivery: Delivery?) {
        self.participant = participant
        self.inport = inport
        self.queue = queue
        self.delivery = delivery
    }

    public var role: String { participant.role }

    public func send(_ outport: String, _ value: JSONValue) async throws {
        try await participant.runtime.send(outport, Message(json: value))
    }
    public func send(_ outport: String, _ message: Message) async throws {
        try await participant.runtime.send(outport, message)
    }
    public func send(_ outport: String, text: String) async throws {
        try await participant.runtime.send(outport, Message(text: text))
    }
    public func send(_ outport: String, bytes: some Sequence<UInt8>) async throws {
        try await participant.runtime.send(outport, Message(bytes))
    }

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
