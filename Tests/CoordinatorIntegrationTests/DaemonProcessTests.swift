import Foundation
import MsgFlo
import MsgFloCoordinator
import Synchronization
import TestSupport
import Testing

/// An executable built next to the tests.
/// The `msgflo` daemon run as a user runs it, with the participants of participants/library.json.
extension CoordinatorIntegration {
@Suite(.serialized) struct DaemonProcessTests {
    /// The daemon's stdout and stderr, interleaved as written.
    struct Output: Sendable {
        let process: TestProcess
        var value: String { process.stdout }
    }

    /// participants/library.json with its commands pointed at the msgflo-participant built beside the tests
    /// (the file names the release build).
    func library(in dir: URL) throws -> URL {
        let lib = dir.appendingPathComponent("library.json")
        try writeParticipantsLibrary(to: lib)
        return lib
    }

    func startDaemon(_ args: [String], in dir: URL, broker: BrokerURL) async throws -> (TestProcess, Output) {
        // Its participants announce every second (period 2.2 s) rather than every 27 s: on AMQP, `fbp` is a work
        // queue another test's coordinator may take an announcement from.
        let p = try await TestProcess(builtExecutable("msgflo").path, ["run", "--broker", broker.unredacted] + args,
                                      environment: ["MSGFLO_DISCOVERY_PERIOD": "2.2"], directory: dir, stderr: .stdout)
        return (p, Output(process: p))
    }

    func waitFor(_ timeout: Duration = .seconds(20), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    func pids(_ log: String) -> [String: Int32] {
        var out: [String: Int32] = [:]
        for line in log.split(separator: "\n") {
            guard let r = line.range(of: "node "), let p = line.range(of: " started: pid ") else { continue }
            let role = String(line[r.upperBound..<p.lowerBound])
            let rest = line[p.upperBound...]
            if let pid = Int32(rest.prefix { $0.isNumber }) { out[role] = pid }
        }
        return out
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func daemonStartsLibraryParticipantsWiresThemAndStopsThemOnSIGTERM(_ kind: TestBrokers.Kind) async throws {
        let broker = try TestBrokers.url(kind)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-daemon-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rep = TestBrokers.unique("rep"), up = TestBrokers.unique("up")
        try """
        'hello' -> IN \(rep)(Repeat)
        \(rep) OUT -> IN \(up)(Uppercase)
        """.write(to: dir.appendingPathComponent("graph.fbp"), atomically: true, encoding: .utf8)
        let lib = try library(in: dir)

        // Listen on up's outport before anything starts.
        let t = try await connect(kind)
        try await t.declareOutport("\(up).OUT")
        let tap = try await Tap(t, "\(up).OUT")

        let (daemon, out) = try await startDaemon(["--graph", "graph.fbp", "--library", lib.path], in: dir, broker: broker)
        #expect(await waitFor { pids(out.value).count == 2 }, "\(out.value)")
        #expect(await tap.wait(count: 1, timeout: .seconds(30)), "\(out.value)")
        #expect(tap.values.first == "HELLO")
        // The daemon's log lines may come after the message went through the edge they report (and are read by a
        // thread of the test's): waited for, not looked up once.
        #expect(await waitFor { out.value.contains("edge bound: \(rep) OUT -> IN \(up)") }, "\(out.value)")
        #expect(await waitFor { out.value.contains("node \(up) ready") }, "\(out.value)")
        #expect(!out.value.contains("guest:guest"))   // passwords never printed

        let children = pids(out.value)
        kill(daemon.processIdentifier, SIGTERM)
        #expect(await waitFor { !daemon.isRunning }, "\(out.value)")
        #expect(daemon.terminationStatus == 0)
        for (role, pid) in children { #expect(kill(pid, 0) != 0, "\(role) (pid \(pid)) still runs") }
        await t.close()
    }

    @Test func daemonStartsWithPendingNodesAndReportsThemInStatus() async throws {
        let broker = try TestBrokers.url(.amqp)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-daemon-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = TestBrokers.unique("ext"), b = TestBrokers.unique("ext")
        try "\(a) OUT -> IN \(b)(Foreign)\n\(a)(Foreign)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        let (daemon, out) = try await startDaemon(["--graph", "g.fbp"], in: dir, broker: broker)
        // One start-up line names the nodes that wait for their participants.
        #expect(await waitFor { out.value.contains("pending until their participants appear: ") && out.value.contains(b) }, "\(out.value)")

        // Read off the cooperative pool (a blocking read there held one of its two threads for the whole listen).
        let (code, data) = try await status(broker)
        let text = String(decoding: data, as: UTF8.self)
        #expect(code == 0)
        #expect(text.contains("ROLE"))
        #expect(text.contains(a) && text.contains(b))
        #expect(text.contains("pending"))

        kill(daemon.processIdentifier, SIGTERM)
        #expect(await waitFor { !daemon.isRunning })
        #expect(daemon.terminationStatus == 0)
    }
}
}
