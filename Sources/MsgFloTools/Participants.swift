import Foundation
import MsgFlo
import MsgFloCoordinator
import Synchronization

/// Splits a command line into words as a POSIX shell would, without running one: the coordinator's splitter, so
/// `msgflo-setup` and `msgflo` start the same command the same way.
public enum CommandWords {
    public static func split(_ command: String) throws -> [String] {
        do {
            return try ShellWords.split(command)
        } catch {
            throw ToolFailure(error.description)
        }
    }
}

/// The participant processes a tool started. Each gets `MSGFLO_BROKER` set to the broker in use; its stdout and
/// stderr go to the tool's own when forwarded, else nowhere. They are stopped with SIGTERM (SIGKILL after a grace
/// period) by ``terminateAll(grace:)``.
public final class ParticipantProcesses: Sendable {
    public struct Exit: Sendable, Equatable {
        public var role: String
        public var command: String
        public var pid: Int32
        public var status: Int32
        public var signaled: Bool
        public var at: ContinuousClock.Instant
    }

    struct Child {
        var role: String
        var command: String
        var process: Process
        var exit: Exit?
        var stderr: OutputTail
    }

    private let children = Mutex<[Child]>([])

    public init() {}

    public var roles: [String] { children.withLock { $0.map(\.role) } }

    /// Starts `command` for `role`. With `shell`, runs `<shell> -c <command>`; otherwise splits the command into
    /// words (quotes respected) and runs the program found on PATH.
    public func start(role: String, command: String, broker: BrokerURL, forward: Set<String>, shell: String?,
                      environment: [String: String]) throws {
        let words: [String]
        if let shell, !shell.isEmpty {
            words = [shell, "-c", command]
        } else {
            words = try CommandWords.split(command)
        }
        guard let program = words.first else { throw ToolFailure("empty command for role \(role)") }
        guard let executable = Self.locate(program, path: environment["PATH"]) else {
            throw ToolFailure("cannot start participant \(role): '\(program)' not found (command: \(command))")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(words.dropFirst())
        var env = environment
        env["MSGFLO_BROKER"] = broker.unredacted
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = forward.contains("stdout") ? FileHandle.standardOutput : FileHandle.nullDevice
        // Stderr goes through a pipe, so that the last of it can be shown when the child fails (forwarded as well
        // when asked). The handler runs on Foundation's own dispatch queue, not on Swift's cooperative pool.
        let tail = OutputTail()
        let errPipe = Pipe()
        let forwardStderr = forward.contains("stderr")
        errPipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            if forwardStderr { FileHandle.standardError.write(data) }
            tail.append(data)
        }
        process.standardError = errPipe
        process.terminationHandler = { [weak self] p in
            let exit = Exit(role: role, command: command, pid: p.processIdentifier, status: p.terminationStatus,
                            signaled: p.terminationReason == .uncaughtSignal, at: .now)
            self?.children.withLock { list in
                if let i = list.firstIndex(where: { $0.process === p }) { list[i].exit = exit }
            }
        }
        try children.withLock { list in
            do {
                try process.run()
            } catch {
                throw ToolFailure("cannot start participant \(role) (\(command)): \(error.localizedDescription)")
            }
            list.append(Child(role: role, command: command, process: process, stderr: tail))
        }
    }

    /// The first child that has exited, if any.
    public var firstExit: Exit? { children.withLock { $0.lazy.compactMap(\.exit).first } }

    /// The children that have exited, in start order.
    public var exits: [Exit] { children.withLock { $0.compactMap(\.exit) } }

    /// The last lines a child wrote on stderr (at most `count`, each cut to 200 characters, control characters
    /// shown as `?`): what a failed child said about itself.
    public func lastStderrLines(pid: Int32, count: Int = 3) -> [String] {
        let tail = children.withLock { $0.first { $0.process.processIdentifier == pid }?.stderr }
        return tail?.lastLines(count) ?? []
    }

    public func pid(of role: String) -> Int32? {
        children.withLock { $0.first { $0.role == role }?.process.processIdentifier }
    }

    /// SIGTERM to every running child; SIGKILL to those still running after `grace`. Returns once all are gone.
    public func terminateAll(grace: Duration = .seconds(5)) async {
        let pids = children.withLock { list in list.filter { $0.exit == nil }.map { $0.process.processIdentifier } }
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if children.withLock({ $0.allSatisfy { $0.exit != nil || !$0.process.isRunning } }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = children.withLock { list in
            list.filter { $0.exit == nil && $0.process.isRunning }.map { $0.process.processIdentifier }
        }
        for pid in left { kill(pid, SIGKILL) }
        for _ in 0..<100 where children.withLock({ $0.contains { $0.process.isRunning } }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    static func locate(_ program: String, path: String?) -> String? {
        guard let found = ProgramSearch.locate(program, path: path) else { return nil }
        // Process wants an absolute path; a relative one is taken from the working directory.
        return found.hasPrefix("/") ? found : FileManager.default.currentDirectoryPath + "/" + found
    }
}

/// The last 4 KB of a stream.
final class OutputTail: Sendable {
    private static let capacity = 4096
    private let bytes = Mutex<[UInt8]>([])

    func append(_ data: Data) {
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
