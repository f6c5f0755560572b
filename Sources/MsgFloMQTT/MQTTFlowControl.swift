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
        /// Deliveries not settled yet: tag → sink.
        var unsettled: [UInt64: Int] = [:]
        var nextTag: UInt64 = 1
        /// Prefetch of each consuming sink.
        var limits: [Int: Int] = [:]
        var limit = Int.max
        /// Settled deliveries waiting for the confirmation count to reach their barrier, in order.
        var waiting: [Int] = []
        var waitingHead = 0
    }

    private let state = Mutex(State())
    /// Deliveries in hand (unsettled + waiting for confirmations), readable by the loop thread without the lock.
    private let inHandCount = Atomic<Int>(0)
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
    var isDrained: Bool { inHand == 0 && unconfirmed == 0 }

    func addConsumer(sink: Int, prefetch: Int) {
        state.withLock { s in
            s.limits[sink] = max(1, prefetch)
            updateLimit(&s)
        }
    }

    /// The sink is gone: its unsettled deliveries leave the hand (on MQTT they are lost with the subscription).
    func removeConsumer(sink: Int) {
        let released = state.withLock { s -> Int in
            guard s.limits.removeValue(forKey: sink) != nil else { return 0 }
            updateLimit(&s)
            let before = s.unsettled.count
            s.unsettled = s.unsettled.filter { $0.value != sink }
            return before - s.unsettled.count
        }
        if released > 0 { release(released) }
        onRelease()
    }

    private func updateLimit(_ s: inout State) {
        s.limit = s.limits.isEmpty ? Int.max : s.limits.values.reduce(0) { $0 &+ $1 }
        limitValue.store(s.limit, ordering: .releasing)
    }

    /// A message read for consuming sink `sink`: in hand from now; the tag goes into its `Delivery`.
    func take(sink: Int) -> UInt64 {
        let tag = state.withLock { s -> UInt64 in
            let t = s.nextTag
            s.nextTag += 1
            s.unsettled[t] = sink
            return t
        }
        inHandCount.add(1, ordering: .releasing)
        return tag
    }

    /// A message routed (republished) by this transport: in hand until the republish is confirmed.
    func routed() {
        inHandCount.add(1, ordering: .releasing)
        enqueueBarrier()
    }

    func settle(tag: UInt64, generation: UInt64, ack: Bool) {
        let known = state.withLock { $0.unsettled.removeValue(forKey: tag) != nil }
        guard known else { return }  // settled twice, or its sink is gone
        enqueueBarrier()
    }

    private func enqueueBarrier() {
        let barrier = issued.load(ordering: .acquiring)
        let now = state.withLock { s -> Bool in
            // Earlier barriers still waiting keep the order (and are never larger than this one).
            if s.waitingHead == s.waiting.count && confirmed.load(ordering: .acquiring) >= barrier { return true }
            s.waiting.append(barrier)
            return false
        }
        if now { release(1) } else { releaseConfirmed() }
    }

    /// The broker confirmed one more publish (the publishing connection's PUBACK callback).
    func publishConfirmed() {
        confirmed.add(1, ordering: .releasing)
        releaseConfirmed()
    }

    /// A publish that was counted but will never be confirmed (refused after it was buffered): counted as done.
    func publishAbandoned() { publishConfirmed() }

    private func releaseConfirmed() {
        let n = state.withLock { s -> Int in
            let done = confirmed.load(ordering: .acquiring)
            var n = 0
            while s.waitingHead < s.waiting.count && s.waiting[s.waitingHead] <= done {
                s.waitingHead += 1
                n += 1
            }
            if s.waitingHead == s.waiting.count {
                s.waiting.removeAll(keepingCapacity: true)
                s.waitingHead = 0
            } else if s.waitingHead >= 1024 {
                s.waiting.removeFirst(s.waitingHead)
                s.waitingHead = 0
            }
            return n
        }
        if n > 0 { release(n) }
    }

    private func release(_ n: Int) {
        let before = inHandCount.subtract(n, ordering: .acquiringAndReleasing).oldValue
        // Wake the reader only when this made room (it polls without the socket while full).
        if before >= limitValue.load(ordering: .acquiring) { onRelease() }
    }
}
