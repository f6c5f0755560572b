import Foundation
import MsgFlo
import Synchronization
import TestSupport
import Testing

/// Issue 10, item 3: names from discovery messages reach the daemon's log and `msgflo status` escaped and capped.
extension CoordinatorIntegration.DaemonProcessTests {
    /// Runs `msgflo status` and returns its exit status (-1: killed after 20 s) and stdout. Never blocks a thread of
    /// the cooperative pool (the other modules' tests run beside this one).
    func status(_ broker: BrokerURL, _ extra: [String] = []) async throws -> (Int32, Data) {
        let p = try await TestProcess(builtExecutable("msgflo").path,
                                      ["status", "--broker", broker.unredacted, "--timeout", "10"] + extra, stderr: .discard)
        let exited = await p.wait(timeout: .seconds(20))
        if !exited { p.signal(SIGKILL) }
        await p.waitForOutputEnd()
        return (exited ? p.terminationStatus : -1, Data(p.stdoutBytes))
    }

    /// Newlines and ESC in a discovery message's id, role, component and label forged whole log lines
    /// ("participant added: FORGED …" with a fake timestamp) and put escape sequences into `msgflo status`; a
    /// 200,000-character role made a 428 KB log line.
    @Test(arguments: TestBrokers.Kind.allCases)
    func discoveryStringsCannotForgeLogLinesOrStatusRows(_ kind: TestBrokers.Kind) async throws {
        let broker = try TestBrokers.url(kind)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-text-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let role = TestBrokers.unique("evil")
        let fakeStamp = "2026-01-01T00:00:00+0000 info msgflo : [MsgFloCoordinator] participant added: FORGED"
        let forged = ParticipantDefinition(
            id: "\(role)-1\n\(fakeStamp) (role x, component y)\r", role: role,
            component: "C\u{1B}[2J\u{1B}]0;pwned\u{7}\u{9B}31m", label: "l\n\u{1B}[31mred",
            inports: [PortDefinition(id: "in", queue: "\(role).IN")])
        let bigRole = TestBrokers.unique("big") + String(repeating: "r", count: 200_000)
        let big = ParticipantDefinition(id: "big-1", role: bigRole, component: "Big",
                                        inports: [PortDefinition(id: "in", queue: "big.IN")])

        let (daemon, out) = try await startDaemon([], in: dir, broker: broker)
        defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
        let t = try await connect(kind)
        // On AMQP `fbp` is a work queue other tests' coordinators may take from: announce until ours has it.
        let escapedId = #"\#(role)-1\n2026-01-01T00:00:00"#
        let deadline = ContinuousClock.now + .seconds(40)
        while ContinuousClock.now < deadline && daemon.isRunning
                && !(out.value.contains(escapedId) && out.value.contains("big-1")) {
            try await t.announce(forged)
            try await t.announce(big)
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(out.value.contains("participant added: \(escapedId)"), "\(out.value.suffix(2000))")
        #expect(out.value.contains("big-1"), "\(out.value.suffix(2000))")

        // `msgflo status`, table and JSON: no raw control byte, the names still recognisable.
        let (code, table) = try await status(broker)
        #expect(code == 0)
        let tableText = String(decoding: table, as: UTF8.self)
        #expect(!table.contains(0x1B) && !tableText.unicodeScalars.contains("\u{9B}"), "\(tableText)")
        #expect(tableText.contains(#"C\u001b[2J\u001b]0;pwned\u0007\u009b31m"#), "\(tableText)")
        #expect(tableText.contains(#"\#(role)-1\n2026"#), "\(tableText)")
        for line in tableText.split(separator: "\n") { #expect(line.utf8.count < 2000, "a table line of \(line.utf8.count) bytes") }
        let (jsonCode, jsonData) = try await status(broker, ["--json"])
        #expect(jsonCode == 0)
        #expect(!jsonData.contains(0x1B))
        let json = try JSONValue(parsing: Array(jsonData))
        let rows = json["rows"]?.arrayValue ?? []
        let row = rows.first { $0["role"]?.stringValue == role }
        #expect(row?["component"]?.stringValue == forged.component, "\(json)")
        #expect(rows.contains { $0["role"]?.stringValue == bigRole }, "the JSON keeps the whole name")

        kill(daemon.processIdentifier, SIGTERM)
        let stopped = ContinuousClock.now + .seconds(20)
        while daemon.isRunning && ContinuousClock.now < stopped { try await Task.sleep(for: .milliseconds(50)) }
        await t.close()
        #expect(!out.value.unicodeScalars.contains("\u{1B}"), "raw ESC in the daemon's log")
        let lines = out.value.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines {
            #expect(!line.hasPrefix("2026-01-01T00:00:00"), "forged line: \(line)")
            #expect(line.utf8.count <= SafeText.lineLimit + 200, "a log line of \(line.utf8.count) bytes")
            #expect(!line.unicodeScalars.contains("\r"))
        }
    }
}
