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

/// A child process with its stdout and stderr collected.
final class Child: Sendable {
    let process: Process
    final class Buffers: Sendable {
        let out = Mutex<[UInt8]>([])
        let err = Mutex<[UInt8]>([])
        /// stderr bytes seen before the first stdout line.
        let errBeforeReady = Mutex<Int?>(nil)
        /// Set when the pipe reached its end (the child and any child of its closed it).
        let outClosed = Mutex(false)
        let errClosed = Mutex(false)
    }
    private let buffers = Buffers()

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
        let b = buffers
        o.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if d.isEmpty { h.readabilityHandler = nil; b.outClosed.withLock { $0 = true }; return }
            b.out.withLock { buf in
                if !buf.contains(10), d.contains(10) { b.errBeforeReady.withLock { $0 = $0 ?? b.err.withLock { $0.count } } }
                buf.append(contentsOf: d)
            }
        }
        e.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            if d.isEmpty { h.readabilityHandler = nil; b.errClosed.withLock { $0 = true }; return }
            b.err.withLock { $0.append(contentsOf: d) }
        }
        try p.run()
    }

    var stdout: String { String(decoding: buffers.out.withLock { $0 }, as: UTF8.self) }
    var stderr: String { String(decoding: buffers.err.withLock { $0 }, as: UTF8.self) }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    var stderrBeforeReady: Int? { buffers.errBeforeReady.withLock { $0 } }

    /// Waits for the first stdout line.
    func ready(timeout: Duration = .seconds(20)) async throws -> String {
        try await eventually("the ready line (stderr: \(stderr.prefix(300)))", timeout: timeout) {
            if !process.isRunning && stdoutLines.isEmpty { throw WaitTimeout(description: "exited \(process.terminationStatus) before ready: \(stderr)") }
            return !stdoutLines.isEmpty
        }
        return stdoutLines[0]
    }

    func terminate() { if process.isRunning { kill(process.processIdentifier, SIGTERM) } }

    /// Waits for the exit; kills it after `timeout`. Then waits (up to 5 s) for both pipes to reach their end, so
    /// that what the child wrote last is in `stdout` and `stderr`: the exit can be seen before the pipes' readers
    /// have run (seen in CI: a one-line error read as empty).
    func exitCode(timeout: Duration = .seconds(20)) async throws -> Int32 {
        do {
            try await eventually("exit", timeout: timeout) { !process.isRunning }
        } catch {
            kill(process.processIdentifier, SIGKILL)
            throw error
        }
        let b = buffers, clock = ContinuousClock(), deadline = clock.now + .seconds(5)
        while !(b.outClosed.withLock { $0 } && b.errClosed.withLock { $0 }), clock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        return process.terminationStatus
    }
}

/// The msgflo-participant executable built next to the tests.
var participantExecutable: URL { builtExecutable("msgflo-participant") }

/// Restarts a test broker (`Scripts/brokers restart KIND`) without blocking a concurrency thread and without a pipe
/// (a restarted mosquitto daemon would keep a pipe open). Spawned and reaped here rather than through `Process`,
/// whose exit monitor was seen to leave the finished script unreaped (`isRunning` stayed true).
func restartBroker(_ kind: TestBrokers.Kind) async throws {
    let script = TestBrokers.packageRoot.appendingPathComponent("Scripts/brokers").path
    let command = "exec '\(script)' restart \(kind.rawValue) </dev/null >/dev/null 2>&1"
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
    defer { argv.forEach { free($0) } }
    let rc = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
    #expect(rc == 0, "could not start Scripts/brokers: \(rc)")
    guard rc == 0 else { return }
    var status: Int32 = 0
    try await eventually("Scripts/brokers restart \(kind.rawValue)", timeout: .seconds(150)) {
        let r = waitpid(pid, &status, WNOHANG)
        return r == pid || (r == -1 && errno == ECHILD)
    }
    #expect(status == 0, "Scripts/brokers restart \(kind.rawValue) exited with status \(status)")
}
