import Foundation
import Logging
import MsgFlo
import Synchronization

/// Collects what a subscription delivers, acking (or nacking) each one unless told to hold them.
final class Collector: Sendable {
    private let task: Task<Void, Never>
    private let subscription: Subscription

    init(_ subscription: Subscription, ack: Bool = true, hold: Bool = false,
         nack: (@Sendable (Delivery) -> Bool)? = nil) {
        self.subscription = subscription
        let box = Box()
        task = Task {
            for await d in subscription {
                box.items.withLock { $0.append(d) }
                guard ack, !hold else { continue }
                if let nack, nack(d) { d.nack() } else { d.ack() }
            }
        }
        self.box = box
    }

    private final class Box: Sendable { let items = Mutex<[Delivery]>([]) }
    private let box: Box

    var count: Int { box.items.withLock { $0.count } }
    func snapshot() -> [Delivery] { box.items.withLock { $0 } }

    /// Waits until `count` deliveries arrived (or the timeout passed) and returns what arrived.
    func wait(count: Int, timeout: Duration = .seconds(10)) async -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while self.count < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return snapshot()
    }

    func cancel() async {
        await subscription.cancel()
        task.cancel()
    }
}

final class StateLog: Sendable {
    private final class Box: Sendable { let states = Mutex<[ConnectionState]>([]) }
    private let box = Box()
    init(_ stream: AsyncStream<ConnectionState>) {
        let box = self.box
        Task { for await s in stream { box.states.withLock { $0.append(s) } } }
    }
    var seen: [ConnectionState] { box.states.withLock { $0 } }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String { "condition not met in time" }
}

func waitUntil(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try await condition() { return }
    throw TimedOut()
}

/// A logger whose lines a test can read.
final class LogCapture: Sendable {
    final class Store: Sendable { let lines = Mutex<[String]>([]) }
    let store = Store()
    var lines: [String] { store.lines.withLock { $0 } }
    var logger: Logger {
        let store = self.store
        return Logger(label: "test") { _ in CaptureHandler(store: store) }
    }

    private struct CaptureHandler: LogHandler {
        let store: Store
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            store.lines.withLock { $0.append("\(event.level): \(event.message)") }
        }
    }
}
