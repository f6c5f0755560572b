import Foundation
import Logging
import MsgFlo
import MsgFloTransports
import Synchronization
import TestSupport
import Testing

func connectedTransport(_ kind: TestBrokers.Kind) async throws -> any Transport {
    var logger = Logger(label: "test.\(kind.rawValue)")
    logger.logLevel = .warning
    let t = try Transports.make(try TestBrokers.url(kind), logger: logger)
    try await t.connect()
    return t
}

/// Collects what arrives on a subscription, acknowledging each message.
final class Collector: Sendable {
    final class Box: Sendable { let messages = Mutex<[Message]>([]) }
    private let box = Box()
    let subscription: Subscription
    private let task: Task<Void, Never>

    init(_ subscription: Subscription) {
        self.subscription = subscription
        let box = self.box
        task = Task {
            for await d in subscription {
                box.messages.withLock { $0.append(d.message) }
                d.ack()
            }
        }
    }

    /// What is sent on outport `outport`: AMQP through a private queue bound to its exchange, MQTT on its topic.
    static func outport(_ outport: String, on t: any Transport) async throws -> Collector {
        try await t.declareOutport(outport)
        if t.broker.scheme.isAMQP {
            let q = TestBrokers.unique("test.collect")
            try await t.declareInport(q, options: QueueOptions(persistent: false))
            try await t.addBinding(Binding(src: outport, tgt: q))
            return Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 500)))
        }
        return Collector(try await t.consume(outport, options: ConsumeOptions(prefetch: 500)))
    }

    static func queue(_ q: String, on t: any Transport, persistent: Bool = true) async throws -> Collector {
        try await t.declareInport(q, options: QueueOptions(persistent: persistent))
        return Collector(try await t.consume(q, options: ConsumeOptions(prefetch: 500)))
    }

    var count: Int { box.messages.withLock { $0.count } }
    var all: [Message] { box.messages.withLock { $0 } }

    @discardableResult
    func wait(for n: Int, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Message] {
        try await eventually("\(n) messages on \(subscription.queue) (have \(count))", timeout: timeout, sourceLocation: sourceLocation) { count >= n }
        return all
    }

    func stop() async {
        await subscription.cancel()
        task.cancel()
    }
}

/// Discovery messages of one role on `fbp`.
final class Announcements: Sendable {
    let collector: Collector
    init(on t: any Transport) async throws {
        try await t.declareDiscoveryQueue()
        collector = Collector(try await t.consume(discoveryQueue, options: ConsumeOptions(prefetch: 500)))
    }
    func of(role: String) -> [ParticipantDefinition] {
        collector.all.compactMap { try? Discovery.parse($0) }.filter { $0.role == role }
    }
    func stop() async { await collector.stop() }
}

struct Timeout: Error, CustomStringConvertible { let description: String }

func eventually(_ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while try await !condition() {
        if clock.now > deadline {
            Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
            throw Timeout(description: "timed out waiting for \(what)")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A child process with its stdout and stderr collected.
final class Child: Sendable {
    let process: Process
    private let out = Mutex<[UInt8]>([])
    private let err = Mutex<[UInt8]>([])
    /// stderr bytes seen before the first stdout line.
    private let errBeforeReady = Mutex<Int?>(nil)

    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        process = p
        let out = self.out, err = self.err, before = self.errBeforeReady
        o.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if d.isEmpty { h.readabilityHandler = nil; return }
            out.withLock { buf in
                if !buf.contains(10), d.contains(10) { before.withLock { $0 = $0 ?? err.withLock { $0.count } } }
                buf.append(contentsOf: d)
            }
        }
        e.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if d.isEmpty { h.readabilityHandler = nil; return }
            err.withLock { $0.append(contentsOf: d) }
        }
        try p.run()
    }

    var stdout: String { String(decoding: out.withLock { $0 }, as: UTF8.self) }
    var stderr: String { String(decoding: err.withLock { $0 }, as: UTF8.self) }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    var stderrBeforeReady: Int? { errBeforeReady.withLock { $0 } }

    /// Waits for the first stdout line.
    func ready(timeout: Duration = .seconds(20)) async throws -> String {
        try await eventually("the ready line (stderr: \(stderr.prefix(300)))", timeout: timeout) {
            if !process.isRunning && stdoutLines.isEmpty { throw Timeout(description: "exited \(process.terminationStatus) before ready: \(stderr)") }
            return !stdoutLines.isEmpty
        }
        return stdoutLines[0]
    }

    func terminate() { if process.isRunning { kill(process.processIdentifier, SIGTERM) } }

    /// Waits for the exit; kills it after `timeout`.
    func exitCode(timeout: Duration = .seconds(20)) async throws -> Int32 {
        do {
            try await eventually("exit", timeout: timeout) { !process.isRunning }
        } catch {
            kill(process.processIdentifier, SIGKILL)
            throw error
        }
        return process.terminationStatus
    }
}

/// The msgflo-participant executable built next to the tests.
var participantExecutable: URL {
    let candidates = [
        Bundle.main.executableURL?.deletingLastPathComponent(),
        Bundle.main.bundleURL.deletingLastPathComponent(),
        TestBrokers.packageRoot.appendingPathComponent(".build/debug"),
    ].compactMap { $0 }.map { $0.appendingPathComponent("msgflo-participant") }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
}
