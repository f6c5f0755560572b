import Foundation
import Testing
import TestSupport

/// One way to start a child (issue 11, item 4; docs/processes.md): MsgFloProcess's `ChildProcess`. No Foundation
/// `Process`, `posix_spawn`, `fork`, `waitpid` or swift-subprocess anywhere else in Sources/ or Tests/. This test
/// keeps it so. Off the cooperative pool: reading and scanning every file takes a while on a loaded machine.
@Suite(.offThePool) struct SpawnLintTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    /// The folders that may start processes: the module itself.
    static let allowed = ["Sources/MsgFloProcess/"]
    static let forms = [#"(?<!\w)Process\(\)"#, #"Foundation\.Process(?!\w)"#, #":\s*Process(?!\w)"#, #"(?<!\w)posix_spawn"#,
                        #"(?<!\w)v?fork\("#, #"(?<!\w)waitpid\("#, #"^import Subprocess"#, #"(?<!\w)cmsgflo_spawn\("#,
                        #"(?<!\w)execv[pe]?\("#, #"(?<!\w)system\("#].map { try! NSRegularExpression(pattern: $0) }

    /// What every form holds: lines without any of these are not looked at further.
    static let words = ["Process", "spawn", "fork(", "waitpid(", "Subprocess", "execv", "system("]

    static func hits(in text: String, file: String) -> [String] {
        var out: [String] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard words.contains(where: { raw.contains($0) }) else { continue }
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("//") || line.hasPrefix("///") { continue }
            let code = line.components(separatedBy: " //").first!
            let range = NSRange(code.startIndex..., in: code)
            if forms.contains(where: { $0.firstMatch(in: code, range: range) != nil }) { out.append("\(file):\(i + 1): \(line)") }
        }
        return out
    }

    @Test func childrenAreStartedOnlyByMsgFloProcess() throws {
        var files: [(String, String)] = []
        for top in ["Sources", "Tests", "participants"] {
            guard let walker = FileManager.default.enumerator(atPath: Self.root.appendingPathComponent(top).path) else { continue }
            while let p = walker.nextObject() as? String {
                guard p.hasSuffix(".swift") else { continue }
                let path = "\(top)/\(p)"
                if path.hasSuffix("SpawnLintTests.swift") || Self.allowed.contains(where: path.hasPrefix) { continue }
                files.append((path, try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)))
            }
        }
        #expect(files.count > 100, "Sources/ not found where expected: \(Self.root.path)")
        let found = files.flatMap { Self.hits(in: $0.1, file: $0.0) }
        #expect(found.isEmpty, "start children with MsgFloProcess's ChildProcess (TestSupport's TestProcess in tests):\n\(found.joined(separator: "\n"))")
        let sample = "let p = Process()\n// Process() in a comment\nposix_spawn(&pid)\nlet e = ProcessInfo.processInfo\nfunc aThisProcess() {}\nvar q: Process?"
        #expect(Self.hits(in: sample, file: "X") == ["X:1: let p = Process()", "X:3: posix_spawn(&pid)", "X:6: var q: Process?"])
    }
}
