import CMsgFloSpawn
import Dispatch
import Foundation
import MsgFlo
import Synchronization

/// A child process, forked from ``SpawnThread`` and exec'd by `cmsgflo_spawn`: signals at their defaults, nothing
/// blocked, its own process group, stdin from /dev/null, stdout and stderr to the given descriptors (or /dev/null),
/// and `PR_SET_PDEATHSIG` set to SIGKILL, so that it never outlives the daemon, even one killed with `kill -9`
/// (posix_spawn cannot set that). Its exit is awaited on a dedicated thread and reported once through `onExit`.
/// The project's one way to start a child: the daemon's supervisor and msgflo-setup's participants use it.
package final class ChildProcess: Sendable {
    package let pid: pid_t
    final class Status: Sendable { let value = Mutex<Int32?>(nil) }
    private let exitStatus = Status()

    package enum Exit: Sendable {
        case exited(Int32)
        case signaled(Int32)
        package var description: String {
            switch self {
            case .exited(let s): "status \(s)"
            case .signaled(let s): "signal \(s)"
            }
        }
    }

    /// The signal a child gets when the daemon dies. SIGKILL: it cannot be ignored, and nobody is left to escalate
    /// a SIGTERM that a child ignores. (On AMQP nothing is lost by it; on MQTT QoS 1 at most the child's prefetch
    /// window, as for any `kill -9` of a participant.)
    package static let deathSignal = SIGKILL

    /// `arguments[0]` is looked up on the child's PATH. `stdout`/`stderr`: write ends to give the child (closed here
    /// after the spawn), or nil for /dev/null. `deathSignal`: what the child gets when this process dies (0: nothing,
    /// for children meant to outlive it, as msgflo-setup's without `--forever`).
    package static func spawn(arguments: [String], environment: [String: String], stdout: Int32?, stderr: Int32?,
                              deathSignal: Int32 = ChildProcess.deathSignal,
                              onExit: @escaping @Sendable (Exit) -> Void) async throws(MsgFloCommandError) -> ChildProcess {
        guard !arguments.isEmpty else {
            if let stdout { close(stdout) }
            if let stderr, stderr != stdout { close(stderr) }
            throw MsgFloCommandError("empty command")
        }
        // posix_spawnp would search PATH of *this* process; use the child's PATH by searching ourselves.
        let program = Self.resolve(arguments[0], path: environment["PATH"])
        let env = environment.map { "\($0.key)=\($0.value)" }
        let parent = getpid()
        let rc = await SpawnThread.shared.run { () -> pid_t in
            let argv = arguments.map { strdup($0) } + [nil]
            let envp = env.map { strdup($0) } + [nil]
            defer {
                argv.forEach { free($0) }
                envp.forEach { free($0) }
            }
            return cmsgflo_spawn(program, argv, envp, stdout ?? -1, stderr ?? -1, deathSignal, parent)
        }
        if let stdout { close(stdout) }
        if let stderr, stderr != stdout { close(stderr) }
        guard rc > 0 else {
            throw MsgFloCommandError("cannot run \(arguments[0]): \(String(cString: strerror(-rc)))")
        }
        return ChildProcess(pid: rc, onExit: onExit)
    }

    private init(pid: pid_t, onExit: @escaping @Sendable (Exit) -> Void) {
        self.pid = pid
        let status = exitStatus
        let child = pid
        let thread = Thread {
            var st: Int32 = 0
            while waitpid(child, &st, 0) == -1 && errno == EINTR {}
            let exit: Exit = (st & 0x7f) == 0 ? .exited((st >> 8) & 0xff) : .signaled(st & 0x7f)
            status.value.withLock { $0 = st }
            onExit(exit)
        }
        thread.name = "msgflo-wait-\(child)"
        thread.start()
    }

    package var isRunning: Bool { exitStatus.value.withLock { $0 == nil } }

    /// Signals the child's process group (the child leads its own), so that what a `--shell` command started gets
    /// it too: `sh -c 'prog args'` may keep prog as its own child rather than exec it.
    package func signal(_ sig: Int32) {
        guard isRunning else { return }
        if kill(-pid, sig) != 0 { kill(pid, sig) }
    }

    /// The program as execvp would find it on the child's PATH (``ProgramSearch``); the name itself when there is
    /// none, so that exec's own error says what is missing.
    static func resolve(_ name: String, path: String?) -> String { ProgramSearch.locate(name, path: path) ?? name }
}

/// The one thread children are forked from. `PR_SET_PDEATHSIG` fires when the *thread* that forked a child ends, not
/// the process: a child forked from a pool thread that the pool later retires would be killed with it. This thread
/// lives as long as the process, blocks every signal (they belong to the threads that wait for them), and only
/// forks, so no Swift concurrency thread ever blocks on a fork.
final class SpawnThread: Sendable {
    static let shared = SpawnThread()

    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let wake = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in loop() }
        thread.name = "msgflo-spawn"
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            jobs.withLock { $0.append { c.resume(returning: body()) } }
            wake.signal()
        }
    }

    private func loop() {
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        while true {
            wake.wait()
            let batch = jobs.withLock { j in
                defer { j = [] }
                return j
            }
            for job in batch { job() }
        }
    }
}
