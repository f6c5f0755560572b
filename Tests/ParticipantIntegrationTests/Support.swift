import Foundation
import Logging
import MsgFlo
import MsgFloTransports
import Synchronization
import TestSupport
import Testing

func connectedTransport(_ kind: TestBrokers.Kind) async throws -> any Transport {
    let logger = testLogger("test.\(kind.rawValue)")
    let t = try Transports.make(try TestBrokers.url(kind), logger: logger)
    try await t.connect()
    return t
}

typealias Collector = MessageCollector

extension MessageCollector {
    /// What is sent on outport `outport`: AMQP through a private queue bound to its exchange, MQTT on its topic.
    static func outport(_ outport: String, on t: any Transport) async throws -> MessageCollector {
        try await t.declareOutport(outport)
        if t.capabilities.contains(.brokerBindings) {  // AMQP: the exchange needs a queue of its own
            let q = TestBrokers.unique("test.collect")
            try await t.declareInport(q, options: QueueOptions(persistent: false))
            try await t.addBinding(Binding(src: outport, tgt: q))
            return MessageCollector(try await t.consume(q, options: ConsumeOptions(prefetch: 500)))
        }
        return MessageCollector(try await t.consume(outport, options: ConsumeOptions(prefetch: 500)))
    }

    static func queue(_ q: String, on t: any Transport, persistent: Bool = true) async throws -> MessageCollector {
        try await t.declareInport(q, options: QueueOptions(persistent: persistent))
        return MessageCollector(try await t.consume(q, options: ConsumeOptions(prefetch: 500)))
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

/// A child process with its stdout and stderr collected (TestSupport's ``TestProcess``).
final class Child: Sendable {
    let process: TestProcess
    final class Ready: Sendable {
        /// stderr bytes seen before the first stdout line.
        let errBeforeReady = Mutex<Int?>(nil)
        let seenLine = Mutex(false)
    }
    private let ready = Ready()

    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) async throws {
        let r = ready
        process = try await TestProcess(executable.path, arguments, environment: environment) { chunk, stderrBytes in
            guard chunk.contains(10), !r.seenLine.withLock({ let s = $0; $0 = true; return s }) else { return }
            r.errBeforeReady.withLock { $0 = $0 ?? stderrBytes }
        }
    }

    var stdout: String { process.stdout }
    var stderr: String { process.stderr }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    var stderrBeforeReady: Int? { ready.errBeforeReady.withLock { $0 } }

    /// Waits for the first stdout line.
    func ready(timeout: Duration = .seconds(20)) async throws -> String {
        let p = process
        let seen = await p.waitForStdout(timeout: timeout) { $0.contains("\n") }
        if !seen && !p.isRunning && stdoutLines.isEmpty {
            throw WaitTimeout(description: "exited \(p.terminationStatus) before ready: \(stderr)")
        }
        guard seen, let first = stdoutLines.first else {
            throw WaitTimeout(description: "the ready line (stderr: \(stderr.prefix(300)))")
        }
        return first
    }

    func terminate() { if process.isRunning { process.terminate() } }

    /// Waits for the exit; kills it after `timeout`. Then waits (up to 5 s) for both pipes to reach their end, so
    /// that what the child wrote last is in `stdout` and `stderr`: the exit can be seen before the pipes' readers
    /// have run (seen in CI: a one-line error read as empty).
    func exitCode(timeout: Duration = .seconds(20)) async throws -> Int32 {
        guard await process.wait(timeout: timeout) else {
            process.signal(SIGKILL)
            throw WaitTimeout(description: "exit: still running after \(timeout)")
        }
        await process.waitForOutputEnd(timeout: .seconds(5))
        return process.terminationStatus
    }
}

/// The msgflo-participant executable built next to the tests.
var participantExecutable: URL { builtExecutable("msgflo-participant") }

/// Restarts a test broker (`Scripts/brokers restart KIND`; TestBrokers.restart: awaited off the cooperative pool,
/// its output in a file rather than a pipe, which a restarted mosquitto daemon would keep open).
func restartBroker(_ kind: TestBrokers.Kind) async throws {
    try await TestBrokers.restart(kind)
}
