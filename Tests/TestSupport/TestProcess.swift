import Foundation
import MsgFloProcess

/// A process a test runs (a tool, the daemon, a participant, a script, a browser), started as the project starts
/// every child (MsgFloProcess's ``ChildProcess``: signals at their defaults, its own process group, killed by the
/// kernel if the test process dies unless `outliveTests`), with its stdout and stderr captured by threads of their
/// own. Its exit and its output are awaited without polling and never block a thread of Swift's cooperative pool.
public final class TestProcess: Sendable {
    /// Where a stream of the child goes.
    public enum Output: Sendable {
        /// Kept in memory (``stdout``, ``stderr``).
        case capture
        /// /dev/null.
        case discard
        /// stderr only: into the same capture as stdout, interleaved as written.
        case stdout
    }

    private let child: ChildProcess
    private let out: CapturedOutput
    private let err: CapturedOutput
    public let started = ContinuousClock.now

    /// Starts `executable` (a path, or a name looked up on PATH) with `arguments`. The environment is the test
    /// process's without `removing`, with `environment` merged in. `stdin`: bytes written to its standard input,
    /// which is then closed (nil: /dev/null). `onStdout` sees each chunk of stdout before it is kept, with the number of stderr bytes captured so far.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                removing: [String] = [], directory: URL? = nil, stdin: [UInt8]? = nil,
                stdout: Output = .capture, stderr: Output = .capture, outliveTests: Bool = false,
                onStdout: (@Sendable (_ chunk: ArraySlice<UInt8>, _ stderrBytesSoFar: Int) -> Void)? = nil) async throws {
        var env = ProcessInfo.processInfo.environment
        for k in removing { env.removeValue(forKey: k) }
        env.merge(environment) { _, new in new }
        let err = CapturedOutput()
        self.err = err
        var seeStdout: (@Sendable (ArraySlice<UInt8>) -> Void)? = nil
        if let onStdout { seeStdout = { chunk in onStdout(chunk, err.bytes.count) } }
        out = CapturedOutput(onChunk: seeStdout)
        let input = try stdin.map { _ in try InputPipe(name: "test-stdin") }
        var fds: [Int32] = []
        var handedOver = false  // the spawn closes the descriptors given to it, also when it fails
        do {
            let o = stdout == .discard ? nil : try out.pipe(name: "test-stdout")
            if let o { fds.append(o) }
            let e: Int32? = switch stderr {
            case .discard: nil
            case .stdout: try o.map(OutputPipe.duplicate)
            case .capture: try err.pipe(name: "test-stderr")
            }
            if let e { fds.append(e) }
            handedOver = true
            child = try await ChildProcess.spawn([executable] + arguments, environment: env, directory: directory?.path,
                                                 stdin: input?.childEnd, stdout: o, stderr: e,
                                                 deathSignal: outliveTests ? 0 : ChildProcess.deathSignal)
        } catch {
            if !handedOver {
                for fd in fds { close(fd) }
                if let input { close(input.childEnd) }
            }
            input?.close()
            throw Failure(description: error.description)
        }
        if stdout == .discard { out.markClosed() }
        if stderr != .capture { err.markClosed() }
        if let input, let stdin { input.writeAndClose(stdin) }
    }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public var processIdentifier: Int32 { child.pid }
    public var isRunning: Bool { child.isRunning }
    /// Its exit status, or the number of the signal that ended it (as Foundation's `Process`); -1 while it runs.
    public var terminationStatus: Int32 { child.exit?.code ?? -1 }
    /// Whether a signal ended it.
    public var wasSignaled: Bool { if case .signaled = child.exit { true } else { false } }
    public var exitDescription: String { child.exit?.description ?? "running" }

    public var stdoutBytes: [UInt8] { out.bytes }
    public var stdout: String { out.text }
    public var stderr: String { err.text }
    /// Both pipes reached their end (the child and whatever it started closed them).
    public var outputClosed: Bool { out.isClosed && err.isClosed }

    /// Sends `sig` to the process alone (not its process group).
    public func signal(_ sig: Int32) { child.signal(sig, group: false) }
    /// SIGTERM.
    public func terminate() { signal(SIGTERM) }

    /// Waits for its exit, at most `timeout`; whether it exited.
    @discardableResult
    public func wait(timeout: Duration) async -> Bool { await child.wait(timeout: timeout) != nil }

    /// Waits for the end of both pipes (what it wrote last is then in ``stdout`` and ``stderr``), at most `timeout`:
    /// a child it left running holds them.
    @discardableResult
    public func waitForOutputEnd(timeout: Duration = .seconds(5)) async -> Bool {
        guard await out.waitForEnd(timeout: timeout) else { return false }
        return await err.waitForEnd(timeout: timeout)
    }

    /// Waits until its stdout (as text) satisfies `condition`, at most `timeout`; false also when stdout ends first.
    public func waitForStdout(timeout: Duration, until condition: @escaping @Sendable (String) -> Bool) async -> Bool {
        await out.wait(timeout: timeout) { bytes, _ in condition(String(decoding: bytes, as: UTF8.self)) }
    }

    /// Waits until its stderr (as text) satisfies `condition`, at most `timeout`.
    public func waitForStderr(timeout: Duration, until condition: @escaping @Sendable (String) -> Bool) async -> Bool {
        await err.wait(timeout: timeout) { bytes, _ in condition(String(decoding: bytes, as: UTF8.self)) }
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`; waits for the exit.
    public func stop(grace: Duration = .seconds(10)) async {
        guard isRunning else { return }
        terminate()
        if await wait(timeout: grace) { return }
        signal(SIGKILL)
        await wait(timeout: .seconds(10))
    }
}
