import MsgFlo

/// Splits a command line into words the way a POSIX shell would, without running one: blanks separate words, single
/// quotes keep everything literally, double quotes keep blanks (with `\"`, `\\`, `\$`, `` \` `` escaped), and a
/// backslash outside quotes keeps the next character. msgflo split on single spaces, so `--iips '{"a":1}'` reached
/// the program with its quotes; here it arrives as the JSON text.
package enum ShellWords {
    package static func split(_ command: String) throws(MsgFloCommandError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var it = command.makeIterator()
        while let c = it.next() {
            switch c {
            case " ", "\t", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let d = it.next() {
                    if d == "'" { closed = true; break }
                    current.append(d)
                }
                if !closed { throw MsgFloCommandError("unterminated ' in command: \(SafeText.escape(command, limit: 300))") }
            case "\"":
                inWord = true
                var closed = false
                while let d = it.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\" {
                        guard let e = it.next() else { break }
                        if "\"\\$`".contains(e) { current.append(e) } else if e != "\n" { current.append("\\"); current.append(e) }
                        continue
                    }
                    current.append(d)
                }
                if !closed { throw MsgFloCommandError("unterminated \" in command: \(SafeText.escape(command, limit: 300))") }
            case "\\":
                inWord = true
                if let e = it.next(), e != "\n" { current.append(e) }
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}

package struct MsgFloCommandError: Error, CustomStringConvertible, Sendable {
    package let description: String
    package init(_ d: String) { description = d }
}
