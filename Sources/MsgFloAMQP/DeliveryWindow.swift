/// The delivery tags of the consumer channel, as a state machine: what the consumers hold, what they settled, and
/// which acks, nacks and rejects to write for it. Pure (no librabbitmq, no clock of its own): ``AMQPLoop`` feeds it
/// deliveries and settles and writes what it answers; unit-tested without a broker.
///
/// Tags on one channel count up from 1 with no gaps, per connection. `slots[head + (tag - base)]` holds the
/// consumer id (held by the caller), ``ackPending(_:)`` (acked by the caller, not yet written), or ``settled``.
///
/// Acks are deferred into one multiple-ack: the settled run at the front of the window is acknowledged in one frame,
/// once it covers a tenth of a consumer's prefetch, or that consumer runs short of prefetch room (at once for small
/// prefetches), or ``ackDelay`` after the first of them, or at close. A flood of deliveries then costs the broker one
/// ack frame per tenth of the prefetch (100 messages at prefetch 1000) instead of one each; an acked message stays
/// unacked on the broker for at most `ackDelay` (were we to die then, it would be delivered again: at-least-once).
/// Acks behind a delivery still held are written one by one at once (a multiple-ack cannot skip the held one).
///
/// Why a tenth and not more: RabbitMQ's queue process does more work per message for larger multiple-acks (measured
/// on 100,000-message drains at prefetch 1000: 483 reductions per message acking every 100, as a plain librabbitmq
/// consumer does, against 493 acking every 300-500 as this window did with only the half-prefetch rule).
///
/// A delivery of an earlier connection (its `generation`) cannot be settled any more: the broker gave it back to the
/// queue when that connection ended.
struct DeliveryWindow {
    /// What to write on the consumer channel, in order. A failed write means the connection is lost.
    enum Write: Equatable {
        case ack(UInt64, multiple: Bool)
        /// basic.nack without requeue: dead-lettered.
        case nack(UInt64)
        /// basic.reject with requeue: given back to the queue.
        case reject(UInt64)
    }

    /// What to do with a delivery.
    enum Verdict: Equatable {
        /// Hand it to its consumer, settleable with this tag and generation.
        case accept
        /// Not ours (its consumer is gone, or its tag is not the next one): give it back to the queue.
        case reject
    }

    struct Consumer {
        let prefetch: Int
        /// Deliveries the broker counts against this consumer's prefetch: not yet covered by an ack, nack or reject
        /// written (held by the caller, or settled and waiting in the deferred multiple-ack).
        var unacked = 0
        /// The broker will soon stop delivering to this consumer unless acks reach it: half its prefetch is unacked.
        var tight: Bool { unacked >= max(1, prefetch / 2) }
        /// Settled deliveries worth one multiple-ack: a tenth of the prefetch.
        var ackRun: Int { max(1, prefetch / 10) }
    }

    static let ackDelay: Duration = .milliseconds(5)
    private static let settled: Int32 = -2
    private static func ackPending(_ id: Int32) -> Int32 { -3 - id }
    private static func ackPendingID(_ mark: Int32) -> Int32? { mark <= -3 ? -3 - mark : nil }

    /// Bumped on every new connection.
    private(set) var generation: UInt64 = 0
    private var slots: [Int32] = []
    private var head = 0
    private var base: UInt64 = 1
    private(set) var consumers: [Int: Consumer] = [:]

    /// The deferred multiple-ack's tag (0: none), since when it waits, and how many deliveries of each consumer it
    /// covers.
    private var unsentAck: UInt64 = 0
    private var unsentSince: ContinuousClock.Instant = .now
    private var unsentByConsumer: [Int: Int] = [:]
    /// Reused for the acks of one batch.
    private var ackedInBatch: [UInt64] = []

    // MARK: connections and consumers

    /// A new connection: tags start at 1 again; what was held or unsent is void (the broker requeued it).
    mutating func newConnection() {
        generation += 1
        connectionLost()
        base = 1
    }

    /// The connection is gone: nothing can be written or settled on it any more.
    mutating func connectionLost() {
        slots.removeAll(keepingCapacity: true)
        head = 0
        unsentAck = 0
        unsentByConsumer.removeAll()
        for id in consumers.keys { consumers[id]?.unacked = 0 }
    }

    /// A manual-ack consumer (re)starts with this prefetch.
    mutating func addConsumer(_ id: Int, prefetch: Int) {
        consumers[id] = Consumer(prefetch: max(1, prefetch), unacked: 0)
    }

    /// A consumer is cancelled: what it held and did not settle goes back to the queue (the rejects to write).
    mutating func removeConsumer(_ id: Int) -> [Write] {
        guard consumers.removeValue(forKey: id) != nil else { return [] }
        var writes: [Write] = []
        let mark = Int32(truncatingIfNeeded: id)
        for i in head..<slots.count where slots[i] == mark {
            slots[i] = Self.settled
            writes.append(.reject(base + UInt64(i - head)))
        }
        unsentByConsumer.removeValue(forKey: id)
        return writes
    }

    // MARK: deliveries

    /// The next tag the broker must send.
    private var expected: UInt64 { base + UInt64(slots.count - head) }

    /// A delivery on the consumer channel for `consumer` (nil: a consumer tag that is not one of ours).
    mutating func delivered(tag: UInt64, consumer: Int?) -> Verdict {
        let inOrder = tag == expected
        guard inOrder, let consumer, let i = consumers.index(forKey: consumer) else {
            // Still counts as a tag of this channel (settled at once), when it is the next one.
            if inOrder { slots.append(Self.settled) }
            return .reject
        }
        slots.append(Int32(truncatingIfNeeded: consumer))
        consumers.values[i].unacked += 1
        return .accept
    }

    // MARK: settling

    /// The callers' acks and nacks of a batch: the writes to make now, in order. Settles of an earlier connection,
    /// of unknown tags, or of deliveries settled already are ignored.
    mutating func settle(_ batch: [Settle], now: ContinuousClock.Instant) -> [Write] {
        var writes: [Write] = []
        ackedInBatch.removeAll(keepingCapacity: true)
        for s in batch where s.generation == generation && s.tag >= base && s.tag - base < UInt64(slots.count - head) {
            let idx = head + Int(s.tag - base)
            let id = slots[idx]
            guard id >= 0 else { continue }
            if s.ack {
                slots[idx] = Self.ackPending(id)
                ackedInBatch.append(s.tag)
            } else {
                slots[idx] = Self.settled
                consumers[Int(id)]?.unacked -= 1
                writes.append(.nack(s.tag))
            }
        }
        // The settled run at the front of the window joins the deferred multiple-ack.
        while head < slots.count && slots[head] < 0 {
            if let id = Self.ackPendingID(slots[head]) {
                if unsentAck == 0 { unsentSince = now }
                unsentAck = base
                unsentByConsumer[Int(id), default: 0] += 1
            }
            head += 1
            base += 1
        }
        // Acks behind a delivery still held are written one by one, now.
        for tag in ackedInBatch where tag >= base {
            let idx = head + Int(tag - base)
            if let id = Self.ackPendingID(slots[idx]) { consumers[Int(id)]?.unacked -= 1 }
            slots[idx] = Self.settled
            writes.append(.ack(tag, multiple: false))
        }
        if head == slots.count {
            slots.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > slots.count {
            slots.removeFirst(head)
            head = 0
        }
        return writes
    }

    /// A deferred multiple-ack waits.
    var hasUnsentAck: Bool { unsentAck > 0 }

    /// When the deferred multiple-ack is due by age (nil: none waits).
    var unsentAckDue: ContinuousClock.Instant? { unsentAck > 0 ? unsentSince + Self.ackDelay : nil }

    /// Some consumer is short of prefetch room: its acks should be written soon.
    var anyTight: Bool { consumers.values.contains { $0.tight } }

    /// The deferred multiple-ack, when it covers a tenth of a consumer's prefetch, or a consumer it covers runs short
    /// of prefetch room, or it is `ackDelay` old.
    mutating func flushIfDue(now: ContinuousClock.Instant) -> Write? {
        guard unsentAck > 0 else { return nil }
        guard now - unsentSince >= Self.ackDelay
                || unsentByConsumer.contains(where: { id, n in
                    guard let c = consumers[id] else { return false }
                    return c.tight || n >= c.ackRun
                }) else { return nil }
        return flush()
    }

    /// The deferred multiple-ack, whatever its age (at close).
    mutating func flush() -> Write? {
        guard unsentAck > 0 else { return nil }
        let tag = unsentAck
        unsentAck = 0
        for (id, n) in unsentByConsumer { consumers[id]?.unacked -= n }
        unsentByConsumer.removeAll(keepingCapacity: true)
        return .ack(tag, multiple: true)
    }
}
