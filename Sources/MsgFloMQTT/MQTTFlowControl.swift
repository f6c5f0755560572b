import MsgFlo
import Synchronization

/// What bounds the messages a QoS 1 (or 2) MQTT transport holds in memory, and what a graceful close waits for.
///
/// libmosquitto acknowledges (PUBACK) every message as it reads it, so once read, a message lives only in this
/// process until what it caused is safe on the broker. A message is *in hand* from the moment it is read until its
/// consumer settled it (`ack`/`nack`) **and** the broker confirmed every publish this transport had made by then
/// (its outputs among them: publishes go out on a connection of their own, whose PUBACKs arrive in order, so a count
/// of them is enough). The consuming connection stops reading its socket while as many messages are in hand as its
/// consumers' prefetch allows in total: a `kill -9` loses at most that many. (The publishing connection has its own
/// socket so that waiting for confirmations never means reading more messages.)
final class MQTTFlowControl: DeliverySettler, Sendable {
    private struct State {
        /// Deliveries not settled yet: tag → sink, and whether it counts against the prefetch.
        var unsettled: [UInt64: (sink: Int, counted: Bool)] = [:]
        var nextTag: UInt64 = 1
        /// Prefetch of each consuming sink.
        var limits: [Int: Int] = [:]
        var limit = Int.max
        /// Settled deliveries waiting for the confirmation count to reach their barrier, in order.
        var waiting: [(barrier: Int, counted: Bool)] = []
        var waitingHead = 0
    }

    private let state = Mutex(State())
    /// Deliveries in hand (unsettled + waiting for confirmations), readable by the loop thread without the lock.
    private let inHandCount = Atomic<Int>(0)
    /// Deliveries in hand that do not count against the prefetch: a persistent session's backlog for a topic, read
    /// before anyone consumed it and handed over when a consumer comes (it was in memory already). A close waits for
    /// them too.
    private let excessCount = Atomic<Int>(0)
    private let limitValue = Atomic<Int>(Int.max)
    /// Publishes made (accepted by the publishing connection) and confirmed by the broker.
    let issued = Atomic<Int>(0)
    let confirmed = Atomic<Int>(0)
    /// Wakes the consuming connection's loop when messages leave the hand.
    let onRelease: @Sendable () -> Void

    init(onRelease: @escaping @Sendable () -> Void) { self.onRelease = onRelease }

    var inHand: Int { inHandCount.load(ordering: .acquiring) }
    var unconfirmed: Int { max(0, issued.load(ordering: .acquiring) - confirmed.load(ordering: .acquiring)) }
    /// As many in hand as the consumers' prefetch allows: stop reading.
    var isFull: Bool { inHandCount.load(ordering: .acquiring) >= limitValue.load(ordering: .acquiring) }
    /// Nothing in hand, every publish confirmed.
    var isDrained: Bool { inHand == 0 && excessCount.load(ordering: .acquiring) == 0 && unconfirmed == 0 }

    /// What holds the reading, for a log line.
    var describe: String {
        let (unsettled, waiting, limit) = state.withLock { ($0.unsettled.count, $0.waiting.count - $0.waitingHead, $0.limit) }
        return "\(inHand) in hand (prefetch \(limit)): \(unsettled) not settled, \(waiting) waiting for \(unconfirmed) publishes to be confirmed (\(confirmed.load(ordering: .acquiring)) of \(issued.load(ordering: .acquiring)))"
    }

    func addConsumer(sink: Int, prefetch: Int) {
        state.withLock { s in
            s.limits[sink] = max(1, prefetch)
            updateLimit(&s)
        }
    }

    /// The sink is gone: its unsettled deliveries leave the hand (on MQTT they are lost with the subscription).
    func removeConsumer(sink: Int) {
        let released = state.withLock { s -> (Int, Int) in
            guard s.limits.removeValue(forKey: sink) != nil else { return (0, 0) }
            updateLimit(&s)
            let dropped = s.unsettled.filter { $0.value.sink == sink }
            for tag in dropped.keys { s.unsettled.removeValue(forKey: tag) }
            let counted = dropped.values.filter(\.counted).count
            return (counted, dropped.count - counted)
        }
        if released.0 > 0 { release(released.0, counted: true) }
        if released.1 > 0 { release(released.1, counted: false) }
        onRelease()
    }

    private func updateLimit(_ s: inout State) {
        s.limit = s.limits.isEmpty ? Int.max : s.limits.values.reduce(0) { $0 &+ $1 }
        limitValue.store(s.limit, ordering: .releasing)
    }

    /// A message read for consuming sink `sink`: in hand from now; the tag goes into its `Delivery`.
    /// `counted: false` for a backlog handed over (see `excessCount`): it must not stop the reading.
    func take(sink: Int, counted: Bool = true) -> UInt64 {
        let tag = state.withLock { s -> UInt64 in
            let t = s.nextTag
            s.nextTag += 1
            s.unsettled[t] = (sink, counted)
            return t
        }
        if counted { inHandCount.add(1, ordering: .releasing) } else { excessCount.add(1, ordering: .releasing) }
        return tag
    }

    /// A message routed (republished) by this transport: in hand until the republish is confirmed.
    func routed() {
        inHandCount.add(1, ordering: .releasing)
        enqueueBarrier(counted: true)
    }

    func settle(tag: UInt64, generation: UInt64, ack: Bool) {
        guard let entry = state.withLock({ $0.unsettled.removeValue(forKey: tag) }) else { return }  // twice, or sink gone
        enqueueBarrier(counted: entry.counted)
    }

    private func enqueueBarrier(counted: Bool) {
        let barrier = issued.load(ordering: .acquiring)
        let now = state.withLock { s -> Bool in
            // Earlier barriers still waiting keep the order (and are never larger than this one).
            if s.waitingHead == s.waiting.count && confirmed.load(ordering: .acquiring) >= barrier { return true }
            s.waiting.append((barrier, counted))
            return false
        }
        if now { release(1, counted: counted) } else { releaseConfirmed() }
    }

    /// The broker confirmed one more publish (the publishing connection's PUBACK callback).
    func publishConfirmed() {
        confirmed.add(1, ordering: .releasing)
        releaseConfirmed()
    }

    /// A publish that was counted but will never be confirmed (refused after it was buffered): counted as done.
    func publishAbandoned() { publishConfirmed() }

    private func releaseConfirmed() {
        let (n, excess) = state.withLock { s -> (Int, Int) in
            let done = confirmed.load(ordering: .acquiring)
            var n = 0, excess = 0
            while s.waitingHead < s.waiting.count && s.waiting[s.waitingHead].barrier <= done {
                if s.waiting[s.waitingHead].counted { n += 1 } else { excess += 1 }
                s.waitingHead += 1
            }
            if s.waitingHead == s.waiting.count {
                s.waiting.removeAll(keepingCapacity: true)
                s.waitingHead = 0
            } else if s.waitingHead >= 1024 {
                s.waiting.removeFirst(s.waitingHead)
                s.waitingHead = 0
            }
            return (n, excess)
        }
        if n > 0 { release(n, counted: true) }
        if excess > 0 { release(excess, counted: false) }
    }

    private func release(_ n: Int, counted: Bool) {
        guard counted else {
            excessCount.subtract(n, ordering: .releasing)
            return
        }
        let before = inHandCount.subtract(n, ordering: .acquiringAndReleasing).oldValue
        // Wake the reader only when this made room (it polls without the socket while full).
        if before >= limitValue.load(ordering: .acquiring) { onRelease() }
    }
}
