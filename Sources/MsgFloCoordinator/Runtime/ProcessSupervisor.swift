import Foundation
import Logging
import Synchronization

/// Runs the participant processes of the graph nodes whose component is in the library: starts them without a
/// shell (unless asked), forwards their output line by line with a `role: ` prefix, restarts them with backoff when
/// they die, and stops them with SIGTERM (SIGKILL after a grace period).
///
/// Foundation's `Process` does the fork and exec; exits arrive on its termination handler (a Foundation thread), so
/// nothing here ever blocks a Swift concurrency thread waiting for a child.
public final class ProcessSupervisor: Sendable {
    public struct Spec: Sendable, Hashable {
        public var role: String
        public var command: String
        /// Run `<shell> -c <command>` instead of splitting the command into words.
        public var shell: String?
        public var environment: [String: String]
        public var forwardStdout: Bool
        public var forwardStderr: Bool

        public init(role: String, command: String, shell: String? = nil, environment: [String: String] = [:],
                    forwardStdout: Bool = true, forwardStderr: Bool = true) {
            self.role = role
            self.command = command
            self.shell = shell
            self.environment = environment
            self.forwardStdout = forwardStdout
            self.forwardStderr = forwardStderr
        }
    }

    struct Child {
        var spec: Spec
        var process: Process?
        var generation = 0
        var failures = 0
        var startedAt = ContinuousClock.now
        var stopping = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    struct State {
        var children: [String: Child] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// Where forwarded lines go (stdout/stderr of the daemon by default); tests capture them.
    private let sink: @Sendable (_ line: String, _ stderr: Bool) -> Void
    public let maximumBackoff: Duration

    public init(logger: Logger, maximumBackoff: Duration = .seconds(30),
                sink: @escaping @Sendable (_ line: String, _ stderr: Bool) -> Void = ProcessSupervisor.printLine) {
        self.logger = logger
        self.maximumBackoff = maximumBackoff
        self.sink = sink
    }

    public static let printLine: @Sendable (String, Bool) -> Void = { line, toStderr in
        let data = Data((line + "\n").utf8)
        (toStderr ? FileHandle.standardError : FileHandle.standardOutput).write(data)
    }

    public var roles: [String] { state.withLock { $0.children.keys.sorted() } }

    public func pid(_ role: String) -> Int32? {
        state.withLock { s in s.children[role]?.process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// Makes the running set match `specs`: starts new ones, stops those no longer wanted, restarts changed ones.
    public func ensure(_ specs: [Spec]) async {
        let wanted = Dictionary(specs.map { ($0.role, $0) }, uniquingKeysWith: { $1 })
        let (toStop, toStart) = state.withLock { s -> ([String], [Spec]) in
            if s.closed { return ([], []) }
            let stop = s.children.filter { wanted[$0.key] != $0.value.spec }.map(\.key)
            let start = wanted.values.filter { s.children[$0.role]?.spec != $0 || stop.contains($0.role) }
            return (stop, start.sorted { $0.role < $1.role })
        }
        for role in toStop { await stop(role) }
        for spec in toStart {
            state.withLock { s in s.children[spec.role] = Child(spec: spec) }
            launch(spec.role)
        }
    }

    /// SIGTERM to one child and waits for it (SIGKILL after `grace`).
    public func stop(_ role: String, grace: Duration = .seconds(5)) async {
        let process = state.withLock { s -> Process? in
            s.children[role]?.stopping = true
            return s.children[role]?.process
        }
        guard let process, process.isRunning else {
            _ = state.withLock { $0.children.removeValue(forKey: role) }
            return
        }
        logger.info("stopping \(role) (pid \(process.processIdentifier))")
        process.terminate()
        let pid = process.processIdentifier
        let killer = Task {
            try await Task.sleep(for: grace)
            kill(pid, SIGKILL)
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                guard s.children[role]?.process === process, process.isRunning else { return true }
                s.children[role]!.exitWaiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
        killer.cancel()
        state.withLock { s in if s.children[role]?.process === process { _ = s.children.removeValue(forKey: role) } }
    }

    /// Stops every child (the daemon is shutting down). No restarts after this.
    public func stopAll(grace: Duration = .seconds(5)) async {
        let roles = state.withLock { s -> [String] in
            s.closed = true
            return Array(s.children.keys)
        }
        await withTaskGroup(of: Void.self) { g in
            for r in roles { g.addTask { await self.stop(r, grace: grace) } }
        }
    }

    private func launch(_ role: String) {
        guard let spec = state.withLock({ s -> Spec? in s.closed ? nil : s.children[role]?.spec }) else { return }
        let p = Process()
        do {
            if let shell = spec.shell {
                p.executableURL = URL(fileURLWithPath: shell)
                p.arguments = ["-c", spec.command]
            } else {
                let words = try ShellWords.split(spec.command)
                guard let program = words.first else { throw MsgFloCommandError("empty command") }
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = ["--"] + words
                _ = program
            }
        } catch {
            logger.error("cannot start \(role): \(error)")
            return
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in spec.environment { env[k] = v }
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = forward(role, stderr: false, enabled: spec.forwardStdout)
        p.standardError = forward(role, stderr: true, enabled: spec.forwardStderr)
        p.terminationHandler = { [weak self] proc in self?.exited(role, proc) }
        let generation = state.withLock { s -> Int? in
            guard s.children[role] != nil, !s.closed else { return nil }
            s.children[role]!.process = p
            s.children[role]!.generation += 1
            s.children[role]!.startedAt = .now
            return s.children[role]!.generation
        }
        guard generation != nil else { return }
        do {
            try p.run()
            logger.info("node \(role) started: pid \(p.processIdentifier): \(spec.command)")
        } catch {
            logger.error("cannot start \(role): \(error.localizedDescription.split(whereSeparator: \.isNewline).first ?? "")")
            scheduleRestart(role, after: nil)
        }
    }

    private func forward(_ role: String, stderr: Bool, enabled: Bool) -> Any {
        guard enabled else { return FileHandle.nullDevice }
        let pipe = Pipe()
        let buffer = Mutex<[UInt8]>([])
        let sink = self.sink
        pipe.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            var lines: [String] = []
            buffer.withLock { b in
                if data.isEmpty {
                    if !b.isEmpty { lines.append(String(decoding: b, as: UTF8.self)); b = [] }
                    h.readabilityHandler = nil
                    return
                }
                b.append(contentsOf: data)
                while let nl = b.firstIndex(of: 10) {
                    lines.append(String(decoding: b[..<nl], as: UTF8.self))
                    b.removeSubrange(...nl)
                }
            }
            for l in lines { sink("\(role): \(l)", stderr) }
        }
        return pipe
    }

    private func exited(_ role: String, _ proc: Process) {
        let (waiters, restart, ranFor) = state.withLock { s -> ([CheckedContinuation<Void, Never>], Bool, Duration) in
            guard var c = s.children[role], c.process === proc else { return ([], false, .zero) }
            let w = c.exitWaiters
            c.exitWaiters = []
            let ran = ContinuousClock.now - c.startedAt
            let restart = !c.stopping && !s.closed
            if restart { c.failures = ran > .seconds(30) ? 1 : c.failures + 1 }
            s.children[role] = c
            return (w, restart, ran)
        }
        for w in waiters { w.resume() }
        let how = proc.terminationReason == .uncaughtSignal ? "signal \(proc.terminationStatus)" : "status \(proc.terminationStatus)"
        if restart {
            logger.warning("node \(role) exited with \(how) after \(ranFor.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))); restarting")
            scheduleRestart(role, after: nil)
        } else {
            logger.info("node \(role) stopped (\(how))")
        }
    }

    private func scheduleRestart(_ role: String, after: Duration?) {
        let failures = state.withLock { $0.children[role]?.failures ?? 1 }
        let backoff = after ?? min(maximumBackoff, .milliseconds(250) * (1 << min(max(failures - 1, 0), 10)))
        Task { [weak self] in
            try? await Task.sleep(for: backoff)
            guard let self else { return }
            let ok = self.state.withLock { s in !s.closed && s.children[role] != nil && s.children[role]?.stopping == false }
            if ok { self.launch(role) }
        }
    }
}
