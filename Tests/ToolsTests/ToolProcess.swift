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

    /// A running tool whose output is collected as it comes.
    final class Running: Sendable {
        let process: Process
        private let out = ByteBuffer()
        private let err = ByteBuffer()
        let started = ContinuousClock.now

        init(_ tool: String, _ args: [String], env: [String: String], cwd: URL?, stdin: Data?) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: tool.hasPrefix("/") ? tool : try ToolProcess.path(tool))
            process.arguments = args
            var environment = ProcessInfo.processInfo.environment
            for k in ["MSGFLO_BROKER", "CLOUDAMQP_URL"] { environment.removeValue(forKey: k) }
            environment.merge(env) { _, new in new }
            process.environment = environment
            if let cwd { process.currentDirectoryURL = cwd }
            let outPipe = Pipe(), errPipe = Pipe(), inPipe = Pipe()
            process.standardOutput = outPipe
            process.standardError = errPipe
            process.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
            // Each pipe is read to its end by a blocking read on a thread of its own. (FileHandle's
            // readabilityHandler once stopped early: a tool's 190 KB of JSON arrived cut at 188,416 bytes although
            // the tool had written it all and exited 0.)
            Self.drain(outPipe.fileHandleForReading, into: out)
            Self.drain(errPipe.fileHandleForReading, into: err)
            try process.run()
            if let stdin {
                inPipe.fileHandleForWriting.write(stdin)
                try? inPipe.fileHandleForWriting.close()
            }
        }

        private static func drain(_ handle: FileHandle, into buffer: ByteBuffer) {
            let thread = Thread {
                let fd = handle.fileDescriptor
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        buffer.append(Data(chunk[0..<n]))
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        break  // end of file (or an error: nothing more will come)
                    }
                }
                try? handle.close()
                buffer.close()
            }
            thread.start()
        }

        var stdout: String { String(decoding: out.data, as: UTF8.self) }
        var stderr: String { String(decoding: err.data, as: UTF8.self) }
        var isRunning: Bool { process.isRunning }

        /// Waits until stdout contains `text`; false on timeout or exit.
        func waitForOutput(_ text: String, timeout: Duration = .seconds(30)) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if stdout.contains(text) { return true }
                if !process.isRunning { return stdout.contains(text) }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return false
        }

        /// Waits for exit; kills it (and says so in stderr) after `timeout`.
        func wait(timeout: Duration = .seconds(60)) async -> Result {
            let deadline = ContinuousClock.now + timeout
            var killed = false
            while process.isRunning {
                if ContinuousClock.now >= deadline {
                    kill(process.processIdentifier, SIGKILL)
                    killed = true
                    break
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = ContinuousClock.now - started
            // The last output chunks: the exit can be seen before the pipes' readers ran (seen in CI: a tool's
            // one-line error read as empty). Both pipes reach their end once the tool and its children closed them;
            // a child left running (a test's failure) holds them, so this waits 5 s at most.
            let drained = ContinuousClock.now + .seconds(5)
            while !(out.isClosed && err.isClosed), ContinuousClock.now < drained {
                try? await Task.sleep(for: .milliseconds(5))
            }
            return Result(status: killed ? -9 : process.terminationStatus, stdout: stdout,
                          stderr: stderr + (killed ? "\n[killed after \(timeout)]" : ""), elapsed: elapsed)
        }

        func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }
    }

    static func start(_ tool: String, _ args: [String], env: [String: String] = [:], cwd: URL? = nil,
                      stdin: Data? = nil) throws -> Running {
        try Running(tool, args, env: env, cwd: cwd, stdin: stdin)
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

final class ByteBuffer: Sendable {
    private let storage = Mutex(Data())
    private let closed = Mutex(false)
    func append(_ d: Data) { storage.withLock { $0.append(d) } }
    func close() { closed.withLock { $0 = true } }
    var data: Data { storage.withLock { $0 } }
    var isClosed: Bool { closed.withLock { $0 } }
}
