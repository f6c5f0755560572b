import MsgFlo

/// A consumer as the owner thread keeps it across connections.
struct LiveSubscription {
    let record: SubscriptionRecord
    /// A data tap's server-named queue on the current connection.
    var tapQueue: String?
    /// Consuming on the current connection.
    var started = false
    /// On the consumer channel with manual acks (its deliveries go through the ``DeliveryWindow``).
    var manualAck: Bool { !record.isTap && !record.directReplyTo }
}

/// What one connection set up and the next must set up again, as a state machine: the exchanges, queues and
/// bindings declared through the transport (in the order made; the operations of ``Op`` that are
/// ``Op/isRestored``, kept as they were asked) and the consumers. Pure: ``AMQPLoop`` records what
/// succeeded and, after a reconnect, runs the ``restorePlan`` it returns; unit-tested without a broker.
struct AMQPTopology {
    /// One step of a restore, in order: declarations and bindings first, then the consumers (by id, oldest first).
    enum Step: Equatable {
        /// A declaration or binding (an ``Op`` that ``Op/isRestored``).
        case declare(Op)
        case consume(Int)
    }

    /// Each recorded item with its place in the order made (a dictionary: recording and forgetting cost the same
    /// with 5,000 items as with 5).
    private var order: [Op: Int] = [:]
    private var made = 0
    private(set) var consumers: [Int: LiveSubscription] = [:]

    /// The recorded declarations and bindings, in the order made.
    var items: [Op] { order.sorted { $0.value < $1.value }.map(\.key) }

    /// A declaration or binding succeeded: made again after every reconnect (once, however often it is made).
    /// Any other operation is not restored and is ignored here.
    mutating func record(_ op: Op) {
        guard op.isRestored, order[op] == nil else { return }
        order[op] = made
        made += 1
    }

    /// An unbind: the binding is not restored any more.
    mutating func forget(_ binding: Binding) {
        order[.bind(binding)] = nil
    }

    /// The consumer `id`'s record (what a delivery needs of it), without copying the rest of its state.
    func record(_ id: Int) -> SubscriptionRecord? { consumers[id]?.record }

    /// A consumer to start (on this connection and every later one).
    mutating func add(_ record: SubscriptionRecord) {
        consumers[record.id] = LiveSubscription(record: record)
    }

    /// A consumer cancelled (by the caller, or by the broker): not restored any more. Nil when unknown.
    mutating func remove(_ id: Int) -> LiveSubscription? {
        consumers.removeValue(forKey: id)
    }

    /// A consumer consumes on the current connection.
    mutating func started(_ id: Int, tapQueue: String?) {
        consumers[id]?.started = true
        consumers[id]?.tapQueue = tapQueue
    }

    /// The direct reply-to consumers live on the publishing channel: when it is renewed, they must consume again.
    mutating func publishChannelRenewed() -> [Int] {
        let ids = consumers.filter { $0.value.record.directReplyTo }.keys.sorted()
        for id in ids { consumers[id]?.started = false }
        return ids
    }

    /// Whether a direct reply-to consumer consumes now (requests with that reply-to can be published).
    var consumesDirectReplies: Bool { consumers.values.contains { $0.record.directReplyTo && $0.started } }

    /// The connection is gone: no consumer consumes any more.
    mutating func connectionLost() {
        for id in consumers.keys {
            consumers[id]?.started = false
            consumers[id]?.tapQueue = nil
        }
    }

    /// What to do on a new connection: every recorded item, then every consumer not consuming.
    var restorePlan: [Step] {
        items.map { .declare($0) } + consumers.keys.sorted().filter { !consumers[$0]!.started }.map { .consume($0) }
    }

    /// Ends every consumer's stream (at close).
    mutating func finishAll() {
        for (_, sub) in consumers { sub.record.continuation.finish() }
        consumers = [:]
    }
}
