import Foundation
import MsgFlo
import MsgFloCoordinator
import TestSupport
import Testing

/// The daemon's life and death (issue 10, items 6 and 7): children never outlive it, and SIGTERM ends it in time
/// whatever the broker is doing.
extension CoordinatorIntegration.DaemonProcessTests {
    func twoNodeGraph(in dir: URL) throws -> (String, String) {
        let a = TestBrokers.unique("life-a"), b = TestBrokers.unique("life-b")
        try "\(a)(Repeat) OUT -> IN \(b)(Repeat)\n"
            .write(to: dir.appendingPathComponent("graph.fbp"), atomically: true, encoding: .utf8)
        return (a, b)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-life-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func alive(_ pid: Int32) -> Bool {
        // A zombie (exited, not yet reaped by its parent) counts as gone.
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }

    /// How many processes run `msgflo-participant Repeat ROLE`.
    func processes(of role: String) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { e in
            guard let pid = Int32(e), alive(pid),
                  let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { return false }
            let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return args.count >= 3 && args[0].hasSuffix("msgflo-participant") && args[2] == role
        }.count
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func childrenDieWithADaemonKilledWithSIGKILLAndANewDaemonStartsOneSet(_ kind: TestBrokers.Kind) async throws {
        let broker = try TestBrokers.url(kind)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b) = try twoNodeGraph(in: dir)
        let lib = try library(in: dir)
        let (daemon, out) = try await startDaemon(["--graph", "graph.fbp", "--library", lib.path], in: dir, broker: broker)
        #expect(await waitFor { pids(out.value).count == 2 }, "\(out.value)")
        let children = pids(out.value)
        #expect(children.values.allSatisfy(alive))

        kill(daemon.processIdentifier, SIGKILL)
        #expect(await waitFor { !daemon.isRunning })
        // The kernel kills them (PR_SET_PDEATHSIG): gone within a second or two.
        #expect(await waitFor(.seconds(3)) { !children.values.contains(where: alive) },
                "children left after kill -9 of the daemon: \(children.filter { alive($0.value) })")

        let (second, out2) = try await startDaemon(["--graph", "graph.fbp", "--library", lib.path], in: dir, broker: broker)
        #expect(await waitFor { pids(out2.value).count == 2 }, "\(out2.value)")
        #expect(await waitFor { out2.value.contains("edge bound") }, "\(out2.value)")
        #expect(processes(of: a) == 1 && processes(of: b) == 1, "one process per role: \(processes(of: a)), \(processes(of: b))")
        let children2 = pids(out2.value)
        kill(second.processIdentifier, SIGTERM)
        #expect(await waitFor { !second.isRunning })
        if second.isRunning { kill(second.processIdentifier, SIGKILL) } else { #expect(second.terminationStatus == 0) }
        #expect(await waitFor(.seconds(3)) { !children2.values.contains(where: alive) })
    }

    /// SIGTERM while the broker is down: children get SIGTERM at once, none is restarted, and the daemon exits 0
    /// within the grace period (5 s) plus 2 s.
    @Test(arguments: TestBrokers.Kind.allCases)
    func sigtermWithTheBrokerDownEndsTheDaemonInTimeBrokerRestart(_ kind: TestBrokers.Kind) async throws {
        let broker = try TestBrokers.url(kind)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try twoNodeGraph(in: dir)
        let lib = try library(in: dir)
        let (daemon, out) = try await startDaemon(["--graph", "graph.fbp", "--library", lib.path], in: dir, broker: broker)
        #expect(await waitFor { out.value.contains("edge bound") }, "\(out.value)")
        let children = pids(out.value)

        try await TestBrokers.script(["down", kind.rawValue])
        do {
            try await Task.sleep(for: .seconds(2))
            let start = ContinuousClock.now
            kill(daemon.processIdentifier, SIGTERM)
            let ended = await waitFor(.seconds(15)) { !daemon.isRunning }
            let took = ContinuousClock.now - start
            #expect(ended, "\(out.value)")
            #expect(took < .seconds(7), "took \(took)")
            if ended {
                #expect(daemon.terminationStatus == 0, "\(out.value)")
            } else {
                kill(daemon.processIdentifier, SIGKILL)
            }
            #expect(!children.values.contains(where: alive))
            let afterTerm = out.value.components(separatedBy: "stopping ").dropFirst().joined()
            #expect(!afterTerm.contains("restarting"), "a child was restarted during shutdown: \(out.value)")
        }
        try await TestBrokers.script(["up", kind.rawValue])
    }
}
