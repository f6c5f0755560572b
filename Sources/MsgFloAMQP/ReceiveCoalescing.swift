/// When the consumer loop lingers before reading: receive coalescing, as a pure state machine (``AMQPLoop`` feeds it
/// deliveries and socket wake-ups; unit-tested without a broker).
///
/// A consumer that keeps up with its broker is woken for nearly every segment the broker writes: one or two messages
/// a wake-up, each one a poll, a recv and a pass over the consumers, which together cost more than the messages.
/// In a stream, the loop instead waits up to `most` after the socket becomes readable (still woken at once by
/// callers' work: sends, settles, operations), and the next turn reads what came in meanwhile in one go.
///
/// A stream is: the socket woke the loop less than `2 ms + most` ago, and the turns since read two or more
/// deliveries. A message arriving alone, or after a pause, is read at once, so one message in flight at a time
/// (request/reply, a prefetch of 1 or 2) never waits. The linger is never longer than lets a quarter of the smallest
/// prefetch of the consumers that received arrive (at the rate seen since the last wake-up), and there is none while
/// a consumer is short of prefetch room: the broker must never wait for our acks because we lingered.
struct ReceiveCoalescing {
    /// The longest linger (zero: never linger).
    let most: Duration
    /// Deliveries since the socket last woke the loop, and the smallest prefetch of their consumers (a no-ack
    /// consumer has none).
    private(set) var deliveries = 0
    private(set) var smallestPrefetch = Int.max
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
        let gap = now - lastWake
        let n = deliveries
        let room = min(smallestPrefetch, 1 << 20) / 4
        lastWake = now
        deliveries = 0
        smallestPrefetch = .max
        guard most > .zero, n >= 2, !tight, gap < .milliseconds(2) + most, room >= 2 else { return nil }
        let linger = min(most, gap * room / n)
        return linger >= .microseconds(20) ? linger : nil
    }
}
