import ArgumentParser
import MsgFlo
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How every executable of the project reports a failure: one line on standard error, `tool: what went wrong`,
/// instead of ArgumentParser's `Error:` followed by usage lines, and exit status 1 (never ArgumentParser's 64).
/// Help and version requests print as ArgumentParser prints them, on standard output, with status 0.
package enum CommandErrors {
    /// `tool: message` on one line: the message's own lines joined with spaces, control characters escaped and the
    /// whole capped (``SafeText``), since messages quote names from files, the network and the command line; any
    /// URL's user-info shown as `***`.
    package static func oneLine(_ tool: String, _ message: String) -> String {
        func trimmed(_ s: Substring) -> Substring {
            let start = s.firstIndex { !$0.isWhitespace } ?? s.endIndex
            let end = s.lastIndex { !$0.isWhitespace }.map(s.index(after:)) ?? start
            return s[start..<max(start, end)]
        }
        let line = message.split(whereSeparator: \.isNewline).map(trimmed).filter { !$0.isEmpty }.joined(separator: " ")
        return SafeText.escape(BrokerURL.redactCredentials(in: "\(tool): \(line)"), limit: SafeText.lineLimit)
    }

    /// Reports `error`, thrown while parsing or running `type`, and returns the exit status for it: 0 for help and
    /// version, the code of an `ExitCode` thrown on purpose, 1 for every failure (ArgumentParser would say 64 for a
    /// usage error; msgflo's tools and scripts expect 1).
    package static func report<C: ParsableCommand>(_ error: any Error, of type: C.Type,
                                                   errorLine: (String) -> Void = writeErrorLine) -> Int32 {
        let code = type.exitCode(for: error)
        if code == .success {
            writeLine(type.fullMessage(for: error), to: 1)
            return 0
        }
        if error is ExitCode { return code.rawValue }
        errorLine(oneLine(type.configuration.commandName ?? String(describing: type), type.message(for: error)))
        return 1
    }

    /// A source line and the caret line under it (FBP's `caretDisplay`: the line, a line break, then spaces or tabs
    /// and `^`), with the source line escaped as ``SafeText`` escapes and the caret moved to stay under the same
    /// character. Nil when there is nothing to show, or when the line is too long to be worth echoing
    /// (`maxScalars`): the first line of the error has said where.
    package static func sourceExcerpt(_ caretDisplay: String, maxScalars: Int = 1000) -> String? {
        guard let split = caretDisplay.lastIndex(of: "\n") else { return nil }
        let source = caretDisplay[..<split]
        let caret = caretDisplay[caretDisplay.index(after: split)...]
        guard caret.last == "^", source.unicodeScalars.count <= maxScalars else { return nil }
        let column = caret.unicodeScalars.count - 1
        var line = ""
        var pad = ""
        for (i, u) in source.unicodeScalars.enumerated() {
            let shown = u == "\t" ? "\t" : SafeText.escaped(u) ?? String(u)
            line += shown
            if i < column { pad += u == "\t" ? "\t" : String(repeating: " ", count: shown.unicodeScalars.count) }
        }
        return line + "\n" + pad + "^"
    }

    /// Writes one line on standard error, escaped and capped (an already escaped line is written as it is).
    package static func writeErrorLine(_ text: String) {
        writeLine(SafeText.escape(BrokerURL.redactCredentials(in: text), limit: SafeText.lineLimit), to: 2)
    }

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
