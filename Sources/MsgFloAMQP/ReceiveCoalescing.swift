import Foundation
import MsgFlo

/// When the consumer loop lingers before reading: receive coalescing, as a pure state machine (``AMQPLoop`` feeds it
/// deliveries and socket wake-ups; unit-tested without a broker).
///
/// A consumer that keeps up with its broker is woken for nearly every segment the broker writes: one or two messages
/// a wake-up, each one a poll, a recv and a pass over the consumers, which together cost more than the messages.
/// In a stream, the loop instead waits up to `most` after the socket becomes readable (still woken at once by
/// callers' work: sends, settles, operations), and the next turn reads what came in meanwhile in one go.
///
/// A stream is a rate of deliveries that brings two or more within `most` (with 500 µs: 4,000 messages a second),
/// measured over the last few milliseconds (`window`, an exponentially decaying count, so a burst after a pause
/// does not count as one). Below it every message is read at once: one in flight at a time (request/reply) and a
/// flow of a few hundred a second never wait. The linger is never longer than lets a quarter of the smallest
/// prefetch of the consumers that received arrive at that rate, and there is none while a consumer is short of
/// prefetch room: the broker must never wait for our acks because we lingered.
struct ReceiveCoalescing {
    /// The longest linger (zero: never linger).
    let most: Duration
    /// The span the rate is measured over (the decaying count's time constant).
    static let window: Duration = .milliseconds(5)
    /// Deliveries since the socket last woke the loop, and the smallest prefetch of their consumers (a no-ack
    /// consumer has none).
    private(set) var deliveries = 0
    private(set) var smallestPrefetch = Int.max
    /// Deliveries of about the last `window` (each weighed down by e^(-age / window)).
    private(set) var recent = 0.0
    /// The smallest prefetch of the consumers that received in the last wake-up that had deliveries.
    private var prefetch = Int.max
    private var lastWake: ContinuousClock.Instant

    init(most: Duration, now: ContinuousClock.Instant = .now) {
        self.most = most
        self.lastWake = now
    }

    /// A delivery to a consumer with this prefetch (nil: a no-ack consumer, which the broker does not hold back).
    mutating func delivered(prefetch: Int?) {
        deliveries += 1
        if let prefetch { smallestPrefetch = min(smallestPrefetch, prefetch) }
    }

    /// The socket became readable at `now`: how long to linger before reading (nil: read now). `tight`: some
    /// consumer is short of prefetch room. Starts counting the next wake-up's deliveries.
    mutating func socketReady(at now: ContinuousClock.Instant, tight: Bool) -> Duration? {
        let window = Self.window.inSeconds
        recent = recent * exp(-(now - lastWake).inSeconds / window) + Double(deliveries)
        if deliveries > 0 { prefetch = smallestPrefetch }
        lastWake = now
        deliveries = 0
        smallestPrefetch = .max
        let most = self.most.inSeconds
        // At `recent / window` a second: at least two within `most`, and room for a quarter of the prefetch.
        guard most > 0, !tight, recent * most >= 2 * window else { return nil }
        let room = Double(min(prefetch, 1 << 20) / 4)
        guard room >= 2 else { return nil }
        let linger = min(most, room * window / recent)
        return linger >= 20e-6 ? .microseconds(Int(linger * 1e6)) : nil
    }
}
