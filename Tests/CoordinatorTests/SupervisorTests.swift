import Foundation
import Logging
import MsgFlo
import Synchronization
import TestSupport
import Testing
@testable import MsgFloCoordinator

@Suite(.serialized) struct SupervisorTests {
    @Test func shellWords() throws {
        #expect(try ShellWords.split(#"prog --iips '{"a": 1}' "two words" a\ b"#) == ["prog", "--iips", #"{"a": 1}"#, "two words", "a b"])
        #expect(try ShellWords.split("  a   b ") == ["a", "b"])
        #expect(throws: MsgFloCommandError.self) { try ShellWords.split("a 'b") }
    }

    func quiet() -> Logger { testLogger("t", level: .critical) }

    /// A child's output is forwarded escaped like a log line: no raw ESC or invalid UTF-8 reaches the daemon's
    /// terminal, and output without line breaks costs a line per 64 KB rather than the daemon's memory.
    @Test func forwardedOutputIsEscapedAndCapped() async throws {
        let lines = Mutex<[String]>([])
        let sup = ProcessSupervisor(logger: quiet()) { line, _ in lines.withLock { $0.append(line) } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sup-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("p.sh")
        try """
        #!/bin/sh
        printf 'red \\033[31mX\\tY \\377\\n'
        head -c 200000 /dev/zero | tr '\\0' 'z'
        printf '\\ndone\\n'
        exec sleep 30
        """.write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        await sup.ensure([.init(role: "r", command: script.path)])
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, !lines.withLock({ $0.contains("r: done") }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        await sup.stopAll()
        let got = lines.withLock { $0 }
        #expect(got.first == #"r: red \u001b[31mX"# + "\tY " + #"\xff"#, "\(got.first ?? "")")
        #expect(got.contains("r: done"))
        let long = got.filter { $0.hasPrefix("r: zzz") }
        #expect((3...4).contains(long.count), "200,000 bytes: a line per 64 KB or so, then the rest")
        #expect(long.allSatisfy { $0.utf8.count <= 3 + SafeText.lineLimit })
        #expect(long.dropLast().allSatisfy { $0.hasSuffix("bytes more)") })
    }

    @Test func forwardsOutputRestartsAndStops() async throws {
        let lines = Mutex<[String]>([])
        let sup = ProcessSupervisor(logger: quiet(), maximumBackoff: .milliseconds(200)) { line, _ in
            lines.withLock { $0.append(line) }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sup-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let counter = dir.appendingPathComponent("count").path
        // Prints its argument (quoted, with a space), counts its starts, dies the first time, then stays up.
        let script = dir.appendingPathComponent("p.sh")
        try """
        #!/bin/sh
        echo "start $1"
        echo x >> \(counter)
        if [ $(wc -l < \(counter)) -lt 2 ]; then exit 3; fi
        trap 'echo bye; exit 0' TERM
        while true; do sleep 0.05; done
        """.write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)

        await sup.ensure([.init(role: "r", command: "\(script.path) 'hello there'")])
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, lines.withLock({ $0.filter { $0 == "r: start hello there" }.count }) < 2 {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(lines.withLock { $0.filter { $0 == "r: start hello there" }.count } == 2)
        // The child can print before the supervisor has recorded it as running (the spawn returns on another thread).
        while ContinuousClock.now < deadline, sup.pid("r") == nil { try await Task.sleep(for: .milliseconds(20)) }
        let pid = try #require(sup.pid("r"))
        await sup.stopAll()
        #expect(kill(pid, 0) != 0)
        #expect(sup.roles.isEmpty)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try String(contentsOfFile: counter, encoding: .utf8).split(separator: "\n").count == 2)
    }

    @Test func nodeLeavingTheGraphIsStopped() async throws {
        let sup = ProcessSupervisor(logger: quiet()) { _, _ in }
        await sup.ensure([.init(role: "a", command: "sleep 30"), .init(role: "b", command: "sleep 30")])
        try await Task.sleep(for: .milliseconds(100))
        let a = try #require(sup.pid("a"))
        await sup.ensure([.init(role: "b", command: "sleep 30")])
        #expect(kill(a, 0) != 0)
        #expect(sup.roles == ["b"])
        await sup.stopAll()
    }
}
