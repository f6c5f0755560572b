/// A place in the source text. Lines and columns start at 1; columns count UTF-16 code units like
/// the reference parser's, and CR LF counts as one line break.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var offset: Int  // UTF-8 byte offset
    public var line: Int
    public var column: Int
    public var description: String { "\(line):\(column)" }
}

/// Something the parser or serializer wants the user to know about without failing: the reference
/// parser silently drops or ignores what was written here.
public struct Warning: Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// nil for warnings that are not about a place in a `.fbp` text (e.g. from the serializer).
    public var location: SourceLocation?
    public var description: String {
        if let location { return "\(location): warning: \(message)" }
        return "warning: \(message)"
    }
}

/// A failed parse: a syntax error, a validation error (reference message text), or a malformed
/// JSON graph.
public struct FBPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The text is not `.fbp`: `message` says what was expected and what was found.
        case syntax
        /// The graph parsed but is invalid; `message` is the reference parser's text (fbp-dsl.md §9.2).
        case validation
        /// The text is not JSON.
        case json
        /// The JSON is not a graph.
        case graph
    }
    public var kind: Kind
    public var message: String
    public var location: SourceLocation?
    /// The source line the error is on (without its line break), for display.
    public var sourceLine: String?
    /// For syntax errors: descriptions of what would have been accepted, sorted.
    public var expected: [String]
    /// For syntax errors: the character found (nil at end of input).
    public var found: String?

    /// One line: `line:column: message`.
    public var description: String {
        if let location { return "\(location): \(message)" }
        return message
    }

    /// The source line with a caret under the error column (empty if there is no location).
    public var caretDisplay: String {
        guard let sourceLine, let location else { return "" }
        var caret = ""
        var units = 0
        for ch in sourceLine.unicodeScalars {
            if units >= location.column - 1 { break }
            caret.append(ch == "\t" ? "\t" : " ")
            units += ch.value > 0xFFFF ? 2 : 1
        }
        return sourceLine + "\n" + caret + "^"
    }
}

/// Maps byte offsets to lines and columns.
struct LineIndex {
    private var starts: [Int] = [0]
    private let bytes: [UInt8]

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = Array(bytes)
        var i = 0
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            if c == 10 {
                if i > 0 && bytes[i - 1] == 13 { starts[starts.count - 1] = i + 1 } else { starts.append(i + 1) }
            } else if c == 13 {
                starts.append(i + 1)
            } else if c == 0xE2 && i + 2 < n && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9) {
                starts.append(i + 3)
                i += 2
            }
            i += 1
        }
    }

    func location(_ offset: Int) -> SourceLocation {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        var col = 1
        var i = starts[lo]
        let end = min(offset, bytes.count)
        while i < end {
            let c = bytes[i]
            if c & 0xC0 != 0x80 { col += c >= 0xF0 ? 2 : 1 }
            i += 1
        }
        return SourceLocation(offset: offset, line: lo + 1, column: col)
    }

    func lineText(containing offset: Int) -> String {
        let loc = location(offset)
        let s = starts[loc.line - 1]
        var e = s
        while e < bytes.count {
            let c = bytes[e]
            if c == 10 || c == 13 { break }
            if c == 0xE2 && e + 2 < bytes.count && bytes[e + 1] == 0x80 && (bytes[e + 2] == 0xA8 || bytes[e + 2] == 0xA9) { break }
            e += 1
        }
        return String(decoding: bytes[s..<e], as: UTF8.self)
    }
}
