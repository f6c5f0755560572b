import Foundation
import Logging
import MsgFlo
import MsgFloTesting
import Synchronization

typealias Collector = DeliveryCollector

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
