import Foundation
import MsgFlo
import MsgFloCoordinator
import MsgFloProcess
import Synchronization

/// Splits a command line into words as a POSIX shell would, without running one: the coordinator's splitter, so
/// `msgflo-setup` and `msgflo` start the same command the same way.
package enum CommandWords {
    package static func split(_ command: String) throws -> [String] {
        do {
            return try ShellWords.split(command)
        } catch {
            throw ToolFailure(error.description)
        }
    }
}

/// The participant processes a tool started, through MsgFloProcess's ``ChildProcess`` (the daemon starts its
/// nodes the same way): each in its own process group, stdin from /dev/null, `MSGFLO_BROKER` set to the broker in
/// use; its stdout goes to the tool's own when forwarded, else nowhere; its stderr is kept (the last 4 KB, to say
/// why a child failed) and forwarded when asked. They are stopped with SIGTERM (SIGKILL after a grace period) by
/// ``terminateAll(grace:)``. Children started with `outliveTool` false also get SIGKILL from the kernel if the tool
/// dies (even by `kill -9`); with it true (msgflo-setup without `--forever`) they keep running after the tool exits.
package final class ParticipantProcesses: Sendable {
    package struct Exit: Sendable, Equatable {
        package var role: String
        package var command: String
        package var pid: Int32
        package var status: Int32
        package var signaled: Bool
        package var at: ContinuousClock.Instant
    }

    struct Child {
        var role: String
        var command: String
        var process: ChildProcess
        /// Filled by the child's exit, which may come before the child is recorded here (one that dies at once).
        var exit: ExitBox
        var stderr: OutputTail
    }

    final class ExitBox: Sendable { let value = Mutex<(ChildProcess.Exit, ContinuousClock.Instant)?>(nil) }

    private struct State {
        var children: [Child] = []
    }

    private let state = Mutex(State())

    package init() {}

    package var roles: [String] { state.withLock { $0.children.map(\.role) } }

    /// Starts `command` for `role`. With `shell`, runs `<shell> -c <command>`; otherwise splits the command into
    /// words (quotes respected) and runs the program found on PATH.
    package func start(role: String, command: String, broker: BrokerURL, forward: Set<String>, shell: String?,
                      environment: [String: String], outliveTool: Bool = false) async throws {
        let words: [String]
        if let shell, !shell.isEmpty {
            words = [shell, "-c", command]
        } else {
            words = try CommandWords.split(command)
        }
        guard let program = words.first else { throw ToolFailure("empty command for role \(role)") }
        guard ProgramSearch.locate(program, path: environment["PATH"]) != nil else {
            throw ToolFailure("cannot start participant \(role): '\(program)' not found (command: \(command))")
        }
        var env = environment
        env["MSGFLO_BROKER"] = broker.unredacted
        // Stderr goes through a pipe, so that the last of it can be shown when the child fails (forwarded as well
        // when asked), read by a thread of its own until its end: never on Swift's cooperative pool.
        // A child that outlives the tool and forwards stderr gets the tool's stderr itself: a pipe to the tool would
        // be closed when the tool exits (and the child's next write would end it with SIGPIPE).
        let tail = OutputTail()
        let box = ExitBox()
        let child: ChildProcess
        do {
            let (stdout, stderr) = try Self.outputs(forward: forward, outliveTool: outliveTool, tail: tail)
            child = try await ChildProcess.spawn(words, environment: env, stdout: stdout, stderr: stderr,
                                                 deathSignal: outliveTool ? 0 : ChildProcess.deathSignal) { how in
                box.value.withLock { $0 = (how, .now) }
            }
        } catch {
            throw ToolFailure("cannot start participant \(role) (\(SafeText.escape(command, limit: 300))): \(error)")
        }
        state.withLock { $0.children.append(Child(role: role, command: command, process: child, exit: box, stderr: tail)) }
    }

    /// A child's stdout (nil: nowhere) and stderr, as `start` describes them. Synchronous, and apart from `start`:
    /// Swift 6.3.1's release build crashed (LLVM's coroutine splitting, on the error value) compiling these nested
    /// throwing calls inside the async function.
    private static func outputs(forward: Set<String>, outliveTool: Bool,
                                tail: OutputTail) throws(SpawnError) -> (stdout: Int32?, stderr: Int32) {
        let forwardStderr = forward.contains("stderr")
        let stdout = forward.contains("stdout") ? try OutputPipe.duplicate(STDOUT_FILENO) : nil
        do {
            let stderr = outliveTool && forwardStderr ? try OutputPipe.duplicate(STDERR_FILENO)
                : try OutputPipe.make(name: "msgflo-setup-stderr") { chunk in
                    if forwardStderr { FileHandle.standardError.write(Data(chunk)) }
                    tail.append(chunk)
                }
            return (stdout, stderr)
        } catch {
            if let stdout { close(stdout) }
            throw error
        }
    }

    private static func exit(_ child: Child) -> Exit? {
        guard let (how, at) = child.exit.value.withLock({ $0 }) else { return nil }
        let pid = child.process.pid
        return switch how {
        case .exited(let status): Exit(role: child.role, command: child.command, pid: pid, status: status, signaled: false, at: at)
        case .signaled(let sig): Exit(role: child.role, command: child.command, pid: pid, status: sig, signaled: true, at: at)
        }
    }

    /// The children that have exited, in start order.
    package var exits: [Exit] {
        state.withLock { $0.children }.compactMap(Self.exit)
    }

    /// The last lines a child wrote on stderr (at most `count`, each cut to 200 characters, control characters
    /// shown as `?`): what a failed child said about itself.
    package func lastStderrLines(pid: Int32, count: Int = 3) -> [String] {
        let tail = state.withLock { $0.children.first { $0.process.pid == pid }?.stderr }
        return tail?.lastLines(count) ?? []
    }

    package func pid(of role: String) -> Int32? {
        state.withLock { $0.children.first { $0.role == role }?.process.pid }
    }

    /// SIGTERM to every running child (its process group); SIGKILL to those still running after `grace`. Returns
    /// once all are gone (or a second after the SIGKILL).
    package func terminateAll(grace: Duration = .seconds(5)) async {
        let running = state.withLock { $0.children.filter { $0.process.isRunning }.map(\.process) }
        for child in running { child.signal(SIGTERM) }
        if await allExited(within: grace) { return }
        for child in running { child.signal(SIGKILL) }
        _ = await allExited(within: .seconds(1))
    }

    /// Waits until no child runs, or `limit` has passed; woken by each exit rather than polling.
    private func allExited(within limit: Duration) async -> Bool {
        let children = state.withLock { $0.children.map(\.process) }
        return await withTaskGroup(of: Bool.self) { group in
            for child in children { group.addTask { await child.wait(timeout: limit) != nil } }
            return await group.reduce(true) { $0 && $1 }
        }
    }
}

/// The last 4 KB of a stream.
final class OutputTail: Sendable {
    private static let capacity = 4096
    private let bytes = Mutex<[UInt8]>([])

    func append(_ data: some Collection<UInt8>) {
        bytes.withLock { b in
            b.append(contentsOf: data.suffix(Self.capacity))
            if b.count > Self.capacity { b.removeFirst(b.count - Self.capacity) }
        }
    }

    func lastLines(_ count: Int) -> [String] {
        let text = String(decoding: bytes.withLock { $0 }, as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).map { line in
            String(line.prefix(200).map { $0.isASCII && ($0.asciiValue! < 0x20 || $0.asciiValue! == 0x7f) ? "?" : $0 })
        }.filter { !$0.allSatisfy(\.isWhitespace) }
        return Array(lines.suffix(count))
    }
}
