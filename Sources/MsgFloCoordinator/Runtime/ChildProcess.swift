import Foundation
import Synchronization

/// A child process started with `posix_spawnp`: signals at their defaults, nothing blocked, its own process group,
/// stdin from /dev/null, stdout and stderr to the given descriptors (or /dev/null). Its exit is awaited on a
/// dedicated thread and reported once through `onExit`.
final class ChildProcess: Sendable {
    let pid: pid_t
    final class Status: Sendable { let value = Mutex<Int32?>(nil) }
    private let exitStatus = Status()

    enum Exit: Sendable {
        case exited(Int32)
        case signaled(Int32)
        var description: String {
            switch self {
            case .exited(let s): "status \(s)"
            case .signaled(let s): "signal \(s)"
            }
        }
    }

    /// `arguments[0]` is looked up on PATH. `stdout`/`stderr`: write ends to give the child (closed here after the
    /// spawn), or nil for /dev/null.
    init(arguments: [String], environment: [String: String], stdout: Int32?, stderr: Int32?,
         onExit: @escaping @Sendable (Exit) -> Void) throws(MsgFloCommandError) {
        guard !arguments.isEmpty else { throw MsgFloCommandError("empty command") }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout, 1) } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr, 2) } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // posix_spawnp searches PATH of *this* process; use the child's PATH by searching ourselves.
        let program = Self.resolve(arguments[0], path: environment["PATH"])
        let rc = posix_spawn(&pid, program, &actions, &attr, argv, envp)
        if let stdout { close(stdout) }
        if let stderr, stderr != stdout { close(stderr) }
        guard rc == 0 else {
            throw MsgFloCommandError("cannot run \(arguments[0]): \(String(cString: strerror(rc)))")
        }
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

    var isRunning: Bool { exitStatus.value.withLock { $0 == nil } }

    /// Signals the child's process group (the child leads its own), so that what a `--shell` command started gets
    /// it too: `sh -c 'prog args'` may keep prog as its own child rather than exec it.
    func signal(_ sig: Int32) {
        guard isRunning else { return }
        if kill(-pid, sig) != 0 { kill(pid, sig) }
    }

    static func resolve(_ name: String, path: String?) -> String {
        if name.contains("/") { return name }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = dir + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return name
    }
}
