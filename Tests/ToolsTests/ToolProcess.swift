import Foundation
import Synchronization
import TestSupport

/// Runs the built tools as processes, the way a user runs them.
enum ToolProcess {
    struct Missing: Error, CustomStringConvertible { let description: String }

    /// The folder holding the built executables: `MSGFLO_TOOLS_BIN`, else the folder of the test bundle (`swift
    /// build` puts executables and the test bundle side by side).
    static func binDir() throws -> URL {
        if let d = ProcessInfo.processInfo.environment["MSGFLO_TOOLS_BIN"], !d.isEmpty { return URL(fileURLWithPath: d) }
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent()) }
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for dir in candidates {
            for sub in ["", ".."] {
                let d = sub.isEmpty ? dir : dir.appendingPathComponent(sub).standardized
                if FileManager.default.isExecutableFile(atPath: d.appendingPathComponent("msgflo-send-message").path) {
                    return d
                }
            }
        }
        throw Missing(description: "built tools not found beside the test bundle (\(candidates.map(\.path))): run swift build, or set MSGFLO_TOOLS_BIN")
    }

    static func path(_ tool: String) throws -> String { try binDir().appendingPathComponent(tool).path }

    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var elapsed: Duration
        var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
        var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    /// A running tool whose output is collected as it comes (TestSupport's ``TestProcess``).
    final class Running: Sendable {
        let process: TestProcess
        var started: ContinuousClock.Instant { process.started }

        init(_ tool: String, _ args: [String], env: [String: String], cwd: URL?, stdin: Data?) async throws {
            process = try await TestProcess(tool.hasPrefix("/") ? tool : try ToolProcess.path(tool), args,
                                            environment: env, removing: ["MSGFLO_BROKER", "CLOUDAMQP_URL"],
                                            directory: cwd, stdin: stdin.map { Array($0) })
        }

        var stdout: String { process.stdout }
        var stderr: String { process.stderr }
        var isRunning: Bool { process.isRunning }

        /// Waits until stdout contains `text`; false on timeout or exit.
        func waitForOutput(_ text: String, timeout: Duration = .seconds(30)) async -> Bool {
            await process.waitForStdout(timeout: timeout) { $0.contains(text) }
        }

        /// Waits for exit; kills it (and says so in stderr) after `timeout`.
        func wait(timeout: Duration = .seconds(60)) async -> Result {
            var killed = false
            if await !process.wait(timeout: timeout) {
                process.signal(SIGKILL)
                killed = true
                await process.wait(timeout: .seconds(10))
            }
            let elapsed = ContinuousClock.now - started
            // The last output chunks: the exit can be seen before the pipes' readers ran (seen in CI: a tool's
            // one-line error read as empty). Both pipes reach their end once the tool and its children closed them;
            // a child left running (a test's failure) holds them, so this waits 5 s at most.
            await process.waitForOutputEnd(timeout: .seconds(5))
            return Result(status: killed ? -9 : process.terminationStatus, stdout: stdout,
                          stderr: stderr + (killed ? "\n[killed after \(timeout)]" : ""), elapsed: elapsed)
        }

        func signal(_ sig: Int32) { process.signal(sig) }
    }

    static func start(_ tool: String, _ args: [String], env: [String: String] = [:], cwd: URL? = nil,
                      stdin: Data? = nil) async throws -> Running {
        try await Running(tool, args, env: env, cwd: cwd, stdin: stdin)
    }

    static func run(_ tool: String, _ args: [String], env: [String: String] = [:], cwd: URL? = nil,
                    stdin: Data? = nil, timeout: Duration = .seconds(60)) async throws -> Result {
        try await start(tool, args, env: env, cwd: cwd, stdin: stdin).wait(timeout: timeout)
    }

    /// A fresh temporary folder.
    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-tools-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }
}
