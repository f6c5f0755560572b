import CMsgFloSpawn
import Foundation
import MsgFlo
import Synchronization

/// The project's one way to start and supervise a child process: the daemon's supervisor, msgflo-setup and
/// msgflo-procfile's participants, msgflo-exec's programs, the benchmarks' scripts and the tests' processes all
/// start theirs here (docs/processes.md says why this and not swift-subprocess or Foundation's `Process`).
///
/// A child is forked from ``SpawnThread`` and exec'd by `cmsgflo_spawn`: signals at their defaults, nothing blocked,
/// its own process group (``signal(_:group:)`` reaches what it starts in turn), stdin, stdout and stderr from the
/// given descriptors (``InputPipe``, ``OutputPipe``, ``CapturedOutput``) or /dev/null, the working directory asked,
/// and `PR_SET_PDEATHSIG` set (SIGKILL by default), so that it never outlives its parent, even one killed with
/// `kill -9` (posix_spawn cannot set that). Its exit is awaited by `waitpid` on a thread of its own, never on Swift's
/// cooperative pool, and reported once: to `onExit`, to every ``wait()`` and in ``exit``. Nothing polls.
package final class ChildProcess: Sendable {
    package let pid: pid_t

    package enum Exit: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        package var description: String {
            switch self {
            case .exited(let s): "status \(s)"
            case .signaled(let s): "signal \(s)"
            }
        }
        /// The exit status, or the signal's number (as Foundation's `terminationStatus`).
        package var code: Int32 {
            switch self {
            case .exited(let s), .signaled(let s): s
            }
        }
    }

    private struct State {
        var exit: Exit?
        var waiters: [UInt64: CheckedContinuation<Exit?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }
    private final class Shared: Sendable {
        let state = Mutex(State())
    }
    private let shared = Shared()

    /// The signal a child gets when its parent dies. SIGKILL: it cannot be ignored, and nobody is left to escalate
    /// a SIGTERM that a child ignores. (On AMQP nothing is lost by it; on MQTT QoS 1 at most the child's prefetch
    /// window, as for any `kill -9` of a participant.)
    package static let deathSignal = SIGKILL

    /// The most bytes of one argument or one environment entry (Linux's MAX_ARG_STRLEN: exec refuses longer ones).
    package static let maximumArgumentBytes = 131_072
    /// The most bytes of the arguments and the environment together (well inside the kernel's ARG_MAX).
    package static let maximumCommandBytes = 1 << 20

    /// Starts a child. `arguments[0]` is looked up on the child's PATH (`environment["PATH"]`) as execvp would
    /// (``ProgramSearch``). Every argument and environment entry is checked first (no NUL byte, no empty or `=`
    /// holding name, sizes within ``maximumArgumentBytes`` and ``maximumCommandBytes``): a command from a graph,
    /// a library file or a message is refused in one escaped line rather than cut short by C.
    ///
    /// `stdin`/`stdout`/`stderr`: descriptors to give the child (this function closes them after the spawn, also
    /// when it fails; the same descriptor may be given for stdout and stderr), nil for /dev/null. `directory`: the
    /// child's working directory. `deathSignal`: what the child gets when this process dies (0: nothing, for
    /// children meant to outlive it, as msgflo-setup's without `--forever`).
    package static func spawn(_ arguments: [String], environment: [String: String], directory: String? = nil,
                              stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil,
                              deathSignal: Int32 = ChildProcess.deathSignal,
                              onExit: (@Sendable (Exit) -> Void)? = nil) async throws(SpawnError) -> ChildProcess {
        let given = [stdin, stdout, stderr].compactMap { $0 }
        defer { for fd in Set(given) { close(fd) } }
        try check(arguments, environment: environment, directory: directory)
        // posix_spawnp would search PATH of *this* process; use the child's PATH by searching ourselves.
        let program = ProgramSearch.locate(arguments[0], path: environment["PATH"]) ?? arguments[0]
        let env = environment.map { "\($0.key)=\($0.value)" }
        let parent = getpid()
        let rc = await SpawnThread.shared.run { () -> pid_t in
            let argv = arguments.map { strdup($0) } + [nil]
            let envp = env.map { strdup($0) } + [nil]
            defer {
                argv.forEach { free($0) }
                envp.forEach { free($0) }
            }
            return cmsgflo_spawn(program, argv, envp, directory, stdin ?? -1, stdout ?? -1, stderr ?? -1,
                                 deathSignal, parent)
        }
        guard rc > 0 else {
            let name = SafeText.escape(arguments[0], limit: 200)
            throw SpawnError("cannot run \(name): \(String(cString: strerror(-rc)))")
        }
        return ChildProcess(pid: rc, onExit: onExit)
    }

    /// Refuses what C would cut short (a NUL byte) or exec would refuse (sizes), naming it escaped.
    static func check(_ arguments: [String], environment: [String: String], directory: String?) throws(SpawnError) {
        guard let program = arguments.first, !program.isEmpty else { throw SpawnError("empty command") }
        let shown = SafeText.escape(program, limit: 200)
        var total = 0
        for (i, a) in arguments.enumerated() {
            if SafeText.containsNUL(a) { throw SpawnError("cannot run \(shown): argument \(i) holds a NUL byte") }
            if a.utf8.count > maximumArgumentBytes {
                throw SpawnError("cannot run \(shown): argument \(i) has \(a.utf8.count) bytes (at most \(maximumArgumentBytes))")
            }
            total += a.utf8.count + 1
        }
        for (k, v) in environment {
            let key = SafeText.escape(k, limit: 100)
            if k.isEmpty || k.contains("=") || SafeText.containsNUL(k) || SafeText.containsNUL(v) {
                throw SpawnError("cannot run \(shown): bad environment variable '\(key)'")
            }
            let n = k.utf8.count + v.utf8.count + 1
            if n > maximumArgumentBytes {
                throw SpawnError("cannot run \(shown): environment variable '\(key)' has \(n) bytes (at most \(maximumArgumentBytes))")
            }
            total += n + 1
        }
        if total > maximumCommandBytes {
            throw SpawnError("cannot run \(shown): arguments and environment have \(total) bytes (at most \(maximumCommandBytes))")
        }
        if let directory, directory.isEmpty || SafeText.containsNUL(directory) {
            throw SpawnError("cannot run \(shown): bad working directory '\(SafeText.escape(directory, limit: 200))'")
        }
    }

    private init(pid: pid_t, onExit: (@Sendable (Exit) -> Void)?) {
        self.pid = pid
        let shared = self.shared
        let child = pid
        let thread = Thread {
            var st: Int32 = 0
            while waitpid(child, &st, 0) == -1 && errno == EINTR {}
            let exit: Exit = (st & 0x7f) == 0 ? .exited((st >> 8) & 0xff) : .signaled(st & 0x7f)
            let waiters = shared.state.withLock { s -> [CheckedContinuation<Exit?, Never>] in
                s.exit = exit
                defer { s.waiters = [:] }
                return Array(s.waiters.values)
            }
            onExit?(exit)
            for w in waiters { w.resume(returning: exit) }
        }
        thread.name = "msgflo-wait-\(child)"
        thread.start()
    }

    /// How it ended; nil while it runs.
    package var exit: Exit? { shared.state.withLock { $0.exit } }
    package var isRunning: Bool { exit == nil }

    /// Waits until it has exited. Not cancellable: for a child that was told to go (and is killed if it does not).
    package func waitUntilExit() async -> Exit {
        // A wait that cannot be cancelled returns the exit.
        await wait(cancellable: false)!
    }

    /// Waits until it has exited; nil when the calling task is cancelled first (the child is left as it is).
    package func wait() async -> Exit? { await wait(cancellable: true) }

    /// Waits at most `timeout` (or until the calling task is cancelled); nil when it still runs then.
    package func wait(timeout: Duration) async -> Exit? {
        if let exit { return exit }
        let first = await withTaskGroup(of: Exit?.self) { group in
            group.addTask { await self.wait() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        return first ?? exit
    }

    private func wait(cancellable: Bool) async -> Exit? {
        let id = shared.state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Exit?, Never>) in
                let now = shared.state.withLock { s -> Exit?? in
                    if let e = s.exit { return .some(e) }
                    if cancellable && Task.isCancelled { return .some(nil) }
                    s.waiters[id] = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            guard cancellable else { return }
            shared.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    /// Sends `sig` to the child's process group (the child leads its own), so that what it started gets it too
    /// (`sh -c 'prog args'` may keep prog as its own child rather than exec it); with `group` false to the child
    /// alone. Nothing once it has been reaped (its pid may belong to another process by then).
    package func signal(_ sig: Int32, group: Bool = true) {
        guard isRunning else { return }
        if !group || kill(-pid, sig) != 0 { kill(pid, sig) }
    }
}

/// Why a child could not be started: one line, names escaped.
package struct SpawnError: Error, CustomStringConvertible, Sendable {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// A thread that runs jobs one after the other, with every signal blocked (a signal a job's system call raises, as
/// SIGPIPE from a write to a closed pipe, stays pending there and the call fails with its error instead of ending the
/// process). Blocking calls (fork, writes to a pipe) run here, never on Swift's cooperative pool.
package final class BlockingThread: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var finished = false
    }
    private let queue = Mutex(Queue())
    private let wake = DispatchSemaphore(value: 0)

    package init(name: String) {
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the thread (after the jobs before it) and returns its result.
    package func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            submit { c.resume(returning: body()) }
        }
    }

    /// Queues `body` without waiting for it.
    package func submit(_ body: @escaping @Sendable () -> Void) {
        queue.withLock { $0.jobs.append(body) }
        wake.signal()
    }

    /// The thread ends once the jobs queued so far have run.
    package func finish() {
        queue.withLock { $0.finished = true }
        wake.signal()
    }

    private func loop() {
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        while true {
            wake.wait()
            let (batch, finished) = queue.withLock { q in
                defer { q.jobs = [] }
                return (q.jobs, q.finished)
            }
            for job in batch { job() }
            if finished && queue.withLock({ $0.jobs.isEmpty }) { return }
        }
    }
}

/// The one thread children are forked from. `PR_SET_PDEATHSIG` fires when the *thread* that forked a child ends, not
/// the process: a child forked from a pool thread that the pool later retires would be killed with it. This thread
/// lives as long as the process, blocks every signal (they belong to the threads that wait for them), and only
/// forks, so no Swift concurrency thread ever blocks on a fork.
enum SpawnThread {
    static let shared = BlockingThread(name: "msgflo-spawn")
}
