#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the program a command names, as `execvp` would: a name with a slash is taken as a path (relative to the
/// working directory), a bare name is looked up in each directory of PATH. Only a regular file this process may
/// execute counts. Used to fail at once, in one line, when a participant's program is missing
/// (msgflo-setup, msgflo-exec) instead of at its first message.
package enum ProgramSearch {
    /// The path of the executable, or nil when there is none.
    package static func locate(_ program: String, path: String?) -> String? {
        guard !program.isEmpty, !program.utf8.contains(0) else { return nil }
        if program.contains("/") {
            return isExecutableFile(program) ? program : nil
        }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
            // An empty PATH entry means the working directory (POSIX).
            let full = (dir.isEmpty ? "." : String(dir)) + "/" + program
            if isExecutableFile(full) { return full }
        }
        return nil
    }

    /// A regular file (after symbolic links) with execute permission for this process.
    package static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}
