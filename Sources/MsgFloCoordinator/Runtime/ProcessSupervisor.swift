import CoreMetrics
import Dispatch
import Foundation
import Logging
import MsgFlo
import MsgFloProcess
import Synchronization

/// Runs the participant processes of the graph nodes whose component is in the library: starts them without a
/// shell (unless asked), forwards their output line by line with a `role: ` prefix, restarts them with backoff when
/// they die, and stops them with SIGTERM (SIGKILL after a grace period).
///
/// Children are started by ``ChildProcess`` (MsgFloProcess) with every signal set back to its default and none
/// blocked: the daemon ignores SIGTERM/SIGINT (ServiceLifecycle handles them through a dispatch source), and an
/// ignored signal would otherwise be inherited, leaving children deaf to SIGTERM. Each child leads its own process
/// group, which is what gets the signals; it is awaited by `waitpid` on a thread of its own and its output read by
/// threads of their own, so nothing here ever blocks a Swift concurrency thread.
package final class ProcessSupervisor: Sendable {
    package struct Spec: Sendable, Hashable {
        package var role: String
        package var command: String
        /// Run `<shell> -c <command>` instead of splitting the command into words.
        package var shell: String?
        package var environment: [String: String]
        package var forwardStdout: Bool
        package var forwardStderr: Bool

        package init(role: String, command: String, shell: String? = nil, environment: [String: String] = [:],
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
        var process: ChildProcess?
        var generation = 0
        var failures = 0
        var startedAt = ContinuousClock.now
        var stopping = false
        /// SIGTERM sent by the shutdown (once).
        var terminated = false
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
    package let maximumBackoff: Duration

    /// What happens to the children, for whoever follows them (the live runtime's processerror).
    package enum Event: Sendable {
        /// A line a child wrote (forwarded or not).
        case output(role: String, line: String, stderr: Bool)
        /// A child ended without being asked to (it is restarted).
        case exited(role: String, description: String)
    }
    private let events: (@Sendable (Event) -> Void)?
    /// `msgflo_children_started_total` and `msgflo_children_restarted_total` (with metrics).
    private let startedCounter: CoreMetrics.Counter?
    private let restartedCounter: CoreMetrics.Counter?

    package init(logger: Logger, maximumBackoff: Duration = .seconds(30),
                sink: @escaping @Sendable (_ line: String, _ stderr: Bool) -> Void = ProcessSupervisor.printLine,
                events: (@Sendable (Event) -> Void)? = nil, metrics: (any MetricsFactory)? = nil) {
        self.logger = logger
        self.maximumBackoff = maximumBackoff
        self.sink = sink
        self.events = events
        startedCounter = metrics.map { Counter(label: "msgflo_children_started_total", factory: $0) }
        restartedCounter = metrics.map { Counter(label: "msgflo_children_restarted_total", factory: $0) }
    }

    package static let printLine: @Sendable (String, Bool) -> Void = { line, toStderr in
        let data = Data((line + "\n").utf8)
        (toStderr ? FileHandle.standardError : FileHandle.standardOutput).write(data)
    }

    /// The most bytes of a child's output forwarded as one line.
    static let maximumForwardedLine = 65_536

    /// `role: line`, escaped like every log line (the child's bytes may be anything: invalid UTF-8 shows as `\xNN`,
    /// control characters as `\u001b`, tabs kept) and capped.
    static func forwarded(_ role: String, _ bytes: some Collection<UInt8>) -> String {
        SafeText.escape(role, limit: 256) + ": "
            + SafeText.escape(bytes: bytes, limit: SafeText.lineLimit, keepingTabs: true)
    }

    package var roles: [String] { state.withLock { $0.children.keys.sorted() } }

    package func pid(_ role: String) -> Int32? {
        state.withLock { s in s.children[role]?.process.flatMap { $0.isRunning ? $0.pid : nil } }
    }

    /// Makes the running set match `specs`: starts new ones, stops those no longer wanted, restarts changed ones.
    package func ensure(_ specs: [Spec]) async {
        let wanted = Dictionary(specs.map { ($0.role, $0) }, uniquingKeysWith: { $1 })
        let (toStop, toStart) = state.withLock { s -> ([String], [Spec]) in
            if s.closed { return ([], []) }
            let stop = s.children.filter { wanted[$0.key] != $0.value.spec }.map(\.key)
            let start = wanted.values.filter { s.children[$0.role]?.spec != $0 || stop.contains($0.role) }
            return (stop, start.sorted { $0.role < $1.role })
        }
        for role in toStop { await stop(role) }
        for spec in toStart {
            let fresh = state.withLock { s -> Bool in
                guard !s.closed else { return false }
                s.children[spec.role] = Child(spec: spec)
                return true
            }
            if fresh { await launch(spec.role) }
        }
    }

    /// SIGTERM to one child and waits for it (SIGKILL after `grace`).
    package func stop(_ role: String, grace: Duration = .seconds(5)) async {
        let process = state.withLock { s -> ChildProcess? in
            s.children[role]?.stopping = true
            return s.children[role]?.process
        }
        guard let process, process.isRunning else {
            _ = state.withLock { $0.children.removeValue(forKey: role) }
            return
        }
        logger.info("stopping \(role) (pid \(process.pid))")
        process.signal(SIGTERM)
        if await process.wait(timeout: grace) == nil { process.signal(SIGKILL) }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                guard s.children[role]?.process === process, process.isRunning else { return true }
                s.children[role]!.exitWaiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
        state.withLock { s in if s.children[role]?.process === process { _ = s.children.removeValue(forKey: role) } }
    }

    /// Shutdown begins: nothing is started or restarted from now on, every child gets SIGTERM at once and SIGKILL
    /// `grace` later if it is still there. Returns at once (the graceful-shutdown handler calls it, before anything
    /// else of the daemon winds down, so that children are told even while the broker is away). Idempotent.
    package func beginShutdown(grace: Duration = .seconds(5)) {
        let processes = state.withLock { s -> [(String, ChildProcess)] in
            s.closed = true
            var out: [(String, ChildProcess)] = []
            for role in s.children.keys.sorted() {
                s.children[role]!.stopping = true
                guard !s.children[role]!.terminated, let p = s.children[role]!.process, p.isRunning else { continue }
                s.children[role]!.terminated = true
                out.append((role, p))
            }
            return out
        }
        for (role, p) in processes {
            logger.info("stopping \(role) (pid \(p.pid))")
            p.signal(SIGTERM)
        }
        Self.killLater(processes.map(\.1), after: grace)
    }

    /// SIGKILL to those of `processes` still running after `grace` (a timer, not a task: nothing waits for it).
    static func killLater(_ processes: [ChildProcess], after grace: Duration) {
        guard !processes.isEmpty else { return }
        let (secs, atto) = grace.components
        DispatchQueue.global().asyncAfter(deadline: .now() + Double(secs) + Double(atto) / 1e18) {
            for p in processes { p.signal(SIGKILL) }
        }
    }

    /// Stops every child (the daemon is shutting down): ``beginShutdown(grace:)``, then waits until each has exited
    /// (at most `grace` and a moment, thanks to SIGKILL). No restarts after this.
    package func stopAll(grace: Duration = .seconds(5)) async {
        beginShutdown(grace: grace)
        let roles = state.withLock { Array($0.children.keys) }
        await withTaskGroup(of: Void.self) { g in
            for r in roles { g.addTask { await self.waitForExit(r) } }
        }
        state.withLock { $0.children = [:] }
    }

    /// Waits until the current process of `role` (if any) has exited.
    private func waitForExit(_ role: String) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                guard let p = s.children[role]?.process, p.isRunning else { return true }
                s.children[role]!.exitWaiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    private func launch(_ role: String) async {
        guard let spec = state.withLock({ s -> Spec? in s.closed ? nil : s.children[role]?.spec }) else { return }
        let arguments: [String]
        do {
            if let shell = spec.shell { arguments = [shell, "-c", spec.command] } else { arguments = try ShellWords.split(spec.command) }
        } catch {
            logger.error("cannot start \(role): \(error)")
            return
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in spec.environment { env[k] = v }
        var out: Int32?
        var err: Int32?
        do {
            if spec.forwardStdout || events != nil { out = try forward(role, stderr: false, print: spec.forwardStdout) }
            if spec.forwardStderr || events != nil { err = try forward(role, stderr: true, print: spec.forwardStderr) }
        } catch {
            if let out { close(out) }
            logger.error("cannot start \(role): \(error)")
            return
        }
        // The generation tells this child's exit from a later one's.
        let generation = state.withLock { s -> Int? in
            guard s.children[role] != nil, !s.closed else { return nil }
            s.children[role]!.generation += 1
            s.children[role]!.startedAt = .now
            return s.children[role]!.generation
        }
        guard let generation else {
            if let out { close(out) }
            if let err { close(err) }
            return
        }
        do {
            let child = try await ChildProcess.spawn(arguments, environment: env, stdout: out, stderr: err) { [weak self] exit in
                self?.exited(role, generation: generation, exit)
            }
            let (keep, closed) = state.withLock { s -> (Bool, Bool) in
                guard s.children[role]?.generation == generation else { return (false, s.closed) }
                s.children[role]!.process = child
                if s.closed { s.children[role]!.terminated = true }
                return (true, s.closed)
            }
            if !keep || closed {
                // Started while the daemon began to shut down (or replaced meanwhile): stopped like the others.
                child.signal(SIGTERM)
                Self.killLater([child], after: .seconds(5))
            }
            startedCounter?.increment()
            logger.info("node \(role) started: pid \(child.pid): \(spec.command)", metadata: ["role": .string(role)])
        } catch {
            logger.error("cannot start \(role): \(error)")
            state.withLock { $0.children[role]?.failures += 1 }
            scheduleRestart(role, after: nil)
        }
    }

    /// A pipe for a child's stdout or stderr, whose lines (at most ``maximumForwardedLine`` bytes each) go to the
    /// sink prefixed with the role. Returns the write end (for the child; the spawn closes it). The read end is read
    /// by a thread of its own until the end of the pipe (``OutputPipe``).
    private func forward(_ role: String, stderr: Bool, print: Bool = true) throws(SpawnError) -> Int32 {
        let sink = self.sink
        let events = self.events
        // Printed escaped (Self.forwarded); handed to the runtime's clients as text, which their JSON escapes.
        return try OutputPipe.lines(name: "msgflo-output-\(role.prefix(40))", maximumLine: Self.maximumForwardedLine) { bytes, _ in
            if print { sink(Self.forwarded(role, bytes), stderr) }
            events?(.output(role: role, line: String(decoding: bytes, as: UTF8.self), stderr: stderr))
        }
    }

    private func exited(_ role: String, generation: Int, _ exit: ChildProcess.Exit) {
        let (waiters, restart, ranFor) = state.withLock { s -> ([CheckedContinuation<Void, Never>], Bool, Duration) in
            guard var c = s.children[role], c.generation == generation else { return ([], false, .zero) }
            let w = c.exitWaiters
            c.exitWaiters = []
            let ran = ContinuousClock.now - c.startedAt
            let restart = !c.stopping && !s.closed
            if restart { c.failures = ran > .seconds(30) ? 1 : c.failures + 1 }
            s.children[role] = c
            return (w, restart, ran)
        }
        for w in waiters { w.resume() }
        if restart {
            let secs = ranFor.inSeconds
            restartedCounter?.increment()
            logger.warning("node \(role) exited with \(exit.description) after \(String(format: "%.1f", secs)) s; restarting",
                           metadata: ["role": .string(role)])
            events?(.exited(role: role, description: exit.description))
            scheduleRestart(role, after: nil)
        } else {
            logger.info("node \(role) stopped (\(exit.description))")
        }
    }

    private func scheduleRestart(_ role: String, after: Duration?) {
        let failures = state.withLock { $0.children[role]?.failures ?? 1 }
        let backoff = after ?? min(maximumBackoff, .milliseconds(250) * (1 << min(max(failures - 1, 0), 10)))
        Task { [weak self] in
            try? await Task.sleep(for: backoff)
            guard let self else { return }
            let ok = self.state.withLock { s in !s.closed && s.children[role] != nil && s.children[role]?.stopping == false }
            if ok { await self.launch(role) }
        }
    }
}
