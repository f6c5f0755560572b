import MsgFlo

/// Pipelined calls on the control channel, as a state machine: methods written back to back, their replies read in
/// the order written. Pure (generic over the call, no librabbitmq): ``AMQPLoop`` tells it what it wrote and what the
/// broker answered on the channel, and does what it returns; unit-tested without a broker.
///
/// A channel answers its methods in order, so each reply belongs to the oldest call still unanswered. A refusal is
/// channel.close, which answers that oldest call; the broker then ignores every method that reached the channel after
/// it, until it reads our close-ok: those calls got no answer and must be written again, in order, on the reopened
/// channel (never dropped, never failed with another call's error). A lost connection hands back every call still
/// unanswered, oldest first, to be made again on the next one (binds and unbinds are idempotent).
struct ControlPipeline<Call> {
    private var calls: [Call] = []
    private var replies: [UInt32] = []
    private var head = 0

    /// Calls written and not answered yet.
    var count: Int { calls.count - head }
    var isEmpty: Bool { head == calls.count }

    /// A call's method was written; `reply` is the method id that answers it (queue.bind-ok, …).
    mutating func wrote(_ call: Call, expecting reply: UInt32) {
        calls.append(call)
        replies.append(reply)
    }

    enum Answer {
        /// The oldest outstanding call succeeded.
        case done(Call)
        /// Nothing is pipelined: the method is not an answer to any call of the pipeline's.
        case stray
        /// A method on the channel that cannot answer the oldest outstanding call (which expects another reply):
        /// the channel's state is unknown; the connection must be given up.
        case unexpected(method: UInt32)
    }

    /// A method other than channel.close arrived on the channel.
    mutating func replied(_ method: UInt32) -> Answer {
        guard head < calls.count else { return .stray }
        guard replies[head] == method else { return .unexpected(method: method) }
        let call = calls[head]
        head += 1
        compact()
        return .done(call)
    }

    /// The broker closed the channel: `refused` is the call it answered so (nil when none was outstanding: the close
    /// answered a call made outside the pipeline); `unanswered` are the later ones, which it ignored, oldest first.
    mutating func channelClosed() -> (refused: Call?, unanswered: [Call]) {
        guard head < calls.count else { return (nil, []) }
        let refused = calls[head]
        let rest = Array(calls[(head + 1)...])
        reset()
        return (refused, rest)
    }

    /// The connection is gone: every call not answered, oldest first (the broker may or may not have made them).
    mutating func connectionLost() -> [Call] {
        let rest = Array(calls[head...])
        reset()
        return rest
    }

    private mutating func reset() {
        calls.removeAll(keepingCapacity: true)
        replies.removeAll(keepingCapacity: true)
        head = 0
    }

    private mutating func compact() {
        if head == calls.count { reset() }
    }
}

/// AMQP 0-9-1 method ids of the calls the control channel pipelines.
enum ControlMethod {
    static let queueBind: UInt32 = 0x0032_0014
    static let queueBindOk: UInt32 = 0x0032_0015
    static let queueUnbind: UInt32 = 0x0032_0032
    static let queueUnbindOk: UInt32 = 0x0032_0033
}

extension Op {
    /// What one pipelined method does for this operation: the queue.bind or queue.unbind to write (queue, exchange)
    /// and the reply that answers it. Nil for an operation that is not a single method on the control channel (a
    /// declaration, a round-robin or dead-letter bind, which declare an exchange first, …): those run one call at a
    /// time, after everything pipelined before them has been answered.
    var pipelined: (method: UInt32, reply: UInt32, queue: String, exchange: String)? {
        switch self {
        case .bind(let b) where b.kind == .pubsub:
            (ControlMethod.queueBind, ControlMethod.queueBindOk, b.tgt, b.src)
        case .unbind(let b):
            (ControlMethod.queueUnbind, ControlMethod.queueUnbindOk, b.tgt, Self.boundExchange(b))
        default:
            nil
        }
    }

    /// The exchange a binding's queue is bound to.
    static func boundExchange(_ b: Binding) -> String {
        switch b.kind {
        case .pubsub: b.src
        case .roundRobin: "out-" + b.src
        case .deadLetter: "dead-" + b.src
        }
    }
}
