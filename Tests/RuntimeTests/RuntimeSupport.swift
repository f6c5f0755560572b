import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import MsgFlo
import Synchronization
import TestSupport
import Testing

/// An executable built next to the tests.
/// A temporary directory, removed by `remove()`.
struct TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-runtime-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }

    /// participants/library.json with its commands pointed at the msgflo-participant built beside the tests.
    /// `extra`: more components, as `"name": "command"` JSON members.
    func library(extra: String = "") throws -> String {
        let lib = path("library.json")
        try writeParticipantsLibrary(to: URL(fileURLWithPath: lib), extra: extra)
        return lib
    }
}

/// A value behind a lock, shareable with closures.
final class Locked<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ v: T) { m = Mutex(v) }
    var value: T { m.withLock { $0 } }
    func withLock<R: Sendable>(_ f: (inout T) -> R) -> R { m.withLock { f(&$0) } }
}

/// `msgflo run --port 0 …` as a user runs it; learns the port from its start line.
final class Daemon: Sendable {
    let process: TestProcess
    /// Its stdout and stderr, interleaved as written.
    var log: String { process.stdout }

    init(_ args: [String], broker: BrokerURL, in dir: TempDir) async throws {
        process = try await TestProcess(
            builtExecutable("msgflo").path,
            ["run", "--broker", broker.unredacted, "--port", "0", "--host", "127.0.0.1"] + args,
            environment: ["MSGFLO_DISCOVERY_PERIOD": "2.2"], directory: dir.url, stderr: .stdout)
    }

    /// The port from `msgflo started on ws://127.0.0.1:PORT`.
    func port(timeout: Duration = .seconds(30)) async throws -> Int {
        var port: Int?
        try await eventually("the start line in: \(log)", timeout: timeout) {
            guard let r = log.range(of: "msgflo started on ws://127.0.0.1:") else { return false }
            port = Int(log[r.upperBound...].prefix { $0.isNumber })
            return port != nil
        }
        return port!
    }

    func stop() async { await process.stop(grace: .seconds(15)) }
}

/// A WebSocket client of the runtime (hummingbird-websocket's client), with a log of what arrived.
final class WSClient: Sendable {
    let received = Locked<[JSONValue]>([])
    let raw = Locked<[String]>([])
    let cursor = Locked(0)
    let outgoing: AsyncStream<String>.Continuation
    let task: Task<Void, any Error>
    let closed = Locked(false)

    init(port: Int, path: String = "/", subprotocol requested: String? = "noflo") {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        outgoing = continuation
        let received = self.received, raw = self.raw, closed = self.closed
        let headers: HTTPFields = {
            var h = HTTPFields()
            if let requested { h[.secWebSocketProtocol] = requested }
            return h
        }()
        let logger = testLogger("ws-test", level: .error)
        task = Task {
            defer { closed.withLock { $0 = true } }
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)\(path)",
                                              configuration: .init(maxFrameSize: 1 << 24, additionalHeaders: headers),
                                              logger: logger) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await text in stream { try await outbound.write(.text(text)) }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                    for try await m in inbound.messages(maxSize: 1 << 24) {
                        guard case .text(let t) = m else { continue }
                        raw.withLock { $0.append(t) }
                        if let v = try? JSONValue(parsing: t) { received.withLock { $0.append(v) } }
                    }
                    group.cancelAll()
                }
            }
        }
    }

    func sendText(_ text: String) { outgoing.yield(text) }

    func send(_ proto: String, _ command: String, _ payload: JSONValue = .object([:]), secret: String? = nil) {
        var p = payload.objectValue ?? [:]
        if let secret { p["secret"] = .string(secret) }
        var m: JSONObject = ["protocol": .string(proto), "command": .string(command), "payload": .object(p)]
        if let secret { m["secret"] = .string(secret) }
        sendText(JSONValue.object(m).serialized)
    }

    var all: [JSONValue] { received.value }

    /// The next message (after those already taken) of protocol `proto` that `condition` accepts, skipping
    /// others; nil after `timeout`.
    func next(_ proto: String, timeout: Duration = .seconds(10), where condition: @Sendable (JSONValue) -> Bool) async -> JSONValue? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let msgs = received.value
            let start = cursor.value
            for i in start..<msgs.count where msgs[i]["protocol"]?.stringValue == proto && condition(msgs[i]) {
                cursor.withLock { $0 = i + 1 }
                return msgs[i]
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Whether a `proto` message matching `condition` arrived at any point since `mark` (an earlier `cursor` value),
    /// waiting up to `timeout`; the cursor is left alone (`next` skips what it passes over, which may come first).
    func saw(_ proto: String, since mark: Int, timeout: Duration = .seconds(10), where condition: @Sendable (JSONValue) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let msgs = received.value
            if msgs[min(mark, msgs.count)...].contains(where: { $0["protocol"]?.stringValue == proto && condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// The next `proto:command` message's payload.
    func next(_ proto: String, _ command: String, timeout: Duration = .seconds(10)) async -> JSONValue? {
        await next(proto, timeout: timeout) { $0["command"]?.stringValue == command }?["payload"]
    }

    /// Sends a command and returns the reply `proto:reply` (default: the command's name) or `proto:error`.
    func ask(_ proto: String, _ command: String, _ payload: JSONValue = .object([:]), reply: String? = nil,
             secret: String? = nil, timeout: Duration = .seconds(10)) async -> (command: String, payload: JSONValue)? {
        let replyCommand = reply ?? command
        send(proto, command, payload, secret: secret)
        guard let m = await next(proto, timeout: timeout, where: { m in
            let c = m["command"]?.stringValue
            return c == replyCommand || c == "error"
        }) else { return nil }
        return (m["command"]?.stringValue ?? "", m["payload"] ?? .null)
    }

    func close() async {
        outgoing.finish()
        _ = try? await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask { try await self.task.value }
            g.addTask { try await Task.sleep(for: .seconds(5)); self.task.cancel() }
            try await g.next()
            g.cancelAll()
        }
    }
}

