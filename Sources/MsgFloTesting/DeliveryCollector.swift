import Synchronization

/// Collects what a subscription delivers, for tests: acks each delivery (or nacks those `nack` picks) unless told to
/// hold them (`hold`, to settle them later) or to leave them (`ack: false`, for taps).
public final class DeliveryCollector: Sendable {
    private final class Box: Sendable { let items = Mutex<[Delivery]>([]) }
    private let box: Box
    private let task: Task<Void, Never>
    private let subscription: Subscription

    public init(_ subscription: Subscription, ack: Bool = true, hold: Bool = false,
                nack: (@Sendable (Delivery) -> Bool)? = nil) {
        self.subscription = subscription
        let box = Box()
        self.box = box
        task = Task {
            for await d in subscription {
                box.items.withLock { $0.append(d) }
                guard ack, !hold else { continue }
                if let nack, nack(d) { d.nack() } else { d.ack() }
            }
        }
    }

    public var count: Int { box.items.withLock { $0.count } }
    public func snapshot() -> [Delivery] { box.items.withLock { $0 } }

    /// Waits until `count` deliveries arrived (or the timeout passed) and returns what arrived.
    public func wait(count: Int, timeout: Duration = .seconds(10)) async -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while self.count < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return snapshot()
    }

    /// Waits for the subscription's stream to end.
    public func ended() async { await task.value }

    /// Cancels the subscription and stops collecting.
    public func cancel() async {
        await subscription.cancel()
        task.cancel()
    }
}
