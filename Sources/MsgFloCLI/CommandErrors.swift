import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How every executable of the project reports a failure: one line on standard error, `tool: what went wrong`,
/// instead of ArgumentParser's `Error:` followed by usage lines. Help and version requests print as ArgumentParser
/// prints them, on standard output.
public enum CommandErrors {
    /// `tool: message` on one line.
    public static func oneLine(_ tool: String, _ message: String) -> String {
        func trimmed(_ s: Substring) -> Substring {
            let start = s.firstIndex { !$0.isWhitespace } ?? s.endIndex
            let end = s.lastIndex { !$0.isWhitespace }.map(s.index(after:)) ?? start
            return s[start..<max(start, end)]
        }
        let line = message.split(whereSeparator: \.isNewline).map(trimmed).filter { !$0.isEmpty }.joined(separator: " ")
        return "\(tool): \(line)"
    }

    /// Reports `error`, thrown while parsing or running `type`, and returns ArgumentParser's exit status for it
    /// (0 for help and version, 64 for usage errors, 1 otherwise).
    public static func report<C: ParsableCommand>(_ error: any Error, of type: C.Type,
                                                   errorLine: (String) -> Void = writeErrorLine) -> Int32 {
        let code = type.exitCode(for: error)
        if code == .success {
            writeLine(type.fullMessage(for: error), to: 1)
            return 0
        }
        if error is ExitCode { return code.rawValue }
        errorLine(oneLine(type.configuration.commandName ?? String(describing: type), type.message(for: error)))
        return code.rawValue
    }

    /// Parses the command line and runs `type`, reporting any failure as ``report(_:of:errorLine:)`` does; exits.
    public static func main<C: ParsableCommand>(_ type: C.Type) -> Never {
        var status: Int32 = 0
        do {
            var command = try type.parseAsRoot()
            try command.run()
        } catch {
            status = report(error, of: type)
        }
        fflush(nil)
        exit(status)
    }

    public static func writeErrorLine(_ text: String) { writeLine(text, to: 2) }

    static func writeLine(_ text: String, to fd: Int32) {
        var bytes = Array((text + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}
