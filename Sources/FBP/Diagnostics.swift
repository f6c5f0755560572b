// Warnings and errors, and how they are shown.
//
// Every diagnostic renders as one line that stands alone (`summary(file:)`: `file:line:col: message`), with raw
// control characters escaped and user text cut, plus, for errors at a place in the text, an optional window of
// the source line with a caret under the column (`excerpt`). Producing one costs O(1) in the size of the input
// (after one O(n) line index for the whole parse), so hostile input with millions of them stays linear.

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
///
/// A parse reports at most `ParseOptions.warningLimit` warnings; if there were more, one last warning (at the
/// place of the first one left out) says how many more there were (`ParseResult.omittedWarnings`).
public struct Warning: Sendable, Equatable, CustomStringConvertible {
    /// The message. Text quoted from the input in it is cut to a few dozen characters, but not escaped:
    /// use `description` or `summary(file:)` to show it.
    public var message: String
    /// nil for warnings that are not about a place in a `.fbp` text (e.g. from the serializer).
    public var location: SourceLocation?

    public init(message: String, location: SourceLocation? = nil) {
        self.message = message
        self.location = location
    }

    /// One line: `line:column: warning: message` (or `warning: message`), control characters escaped.
    public var description: String {
        let text = "warning: " + Diagnostics.escaped(message, limit: Diagnostics.messageLimit)
        if let location { return "\(location): \(text)" }
        return text
    }

    /// One line that stands alone: `file:line:column: warning: message` (`file: warning: message` without a
    /// location; `file` nil leaves it out). The file name is escaped too.
    public func summary(file: String?) -> String {
        Diagnostics.prefix(file, location) + description
    }
}

/// A failed parse: a syntax error, a validation error (reference message text), or a malformed
/// JSON graph.
public struct FBPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The text is not `.fbp` (or is past one of the parser's limits, see docs/fbp.md): `message` says what
        /// was expected and what was found.
        case syntax
        /// The graph parsed but is invalid; `message` is the reference parser's text (fbp-dsl.md §9.2).
        case validation
        /// The text is not JSON.
        case json
        /// The JSON is not a graph.
        case graph
    }
    public var kind: Kind
    /// The message (for validation errors the reference's text). Text quoted from the input in it is cut to a few
    /// dozen characters, but not escaped: use `description` or `summary(file:)` to show it.
    public var message: String
    public var location: SourceLocation?
    /// The source line the error is on, for display: a window of at most about 120 bytes around the column, with
    /// "…" where the line was cut and control characters escaped (`excerpt.text`).
    public var sourceLine: String?
    /// For syntax errors: descriptions of what would have been accepted, sorted.
    public var expected: [String]
    /// For syntax errors: the character found (nil at end of input).
    public var found: String?
    /// The window of the source line with the place of the error (nil without a location).
    public var excerpt: SourceExcerpt?

    /// One line: `line:column: message` (or `message`), control characters escaped.
    public var description: String {
        let text = Diagnostics.escaped(message, limit: Diagnostics.messageLimit)
        if let location { return "\(location): \(text)" }
        return text
    }

    /// One line that stands alone: `file:line:column: message` (`file: message` without a location; `file` nil
    /// leaves it out), or with a `label`, `file:line:column: label: message` (e.g. "error"). The file name is
    /// escaped too. The caret display (`caretDisplay`) may follow it.
    public func summary(file: String?, label: String? = nil) -> String {
        guard let label else { return Diagnostics.prefix(file, location) + description }
        var text = label + ": " + Diagnostics.escaped(message, limit: Diagnostics.messageLimit)
        if let location { text = "\(location): " + text }
        return Diagnostics.prefix(file, location) + text
    }

    /// Two lines, the source window and a caret under the error column (empty if there is no location):
    /// `excerpt.text + "\n" + excerpt.caretLine`.
    public var caretDisplay: String {
        guard let excerpt else { return "" }
        return excerpt.text + "\n" + excerpt.caretLine
    }
}

/// A window of one source line around a column, ready to print under a diagnostic.
public struct SourceExcerpt: Sendable, Equatable {
    /// The line, or (when it is long) up to `Diagnostics.windowBytes` bytes either side of the column with "…"
    /// where it was cut. Control characters and line separators are escaped (`\x1B`, `\u2028`); tabs are kept.
    public var text: String
    /// How many terminal columns of `text` come before the caret.
    public var caretColumn: Int
    /// Spaces (a tab under a tab) up to `caretColumn`, then "^".
    public var caretLine: String
}

/// Limits and helpers for showing diagnostics.
public enum Diagnostics {
    /// How many bytes of a long source line an excerpt shows on each side of the column.
    public static let windowBytes = 60
    /// How many characters of a message `description` shows (messages are short by construction; this bounds
    /// messages from elsewhere, such as JSON graph paths).
    public static let messageLimit = 1000
    /// How many characters of input text a message quotes.
    static let quoteLimit = 60

    /// The text with control characters (C0 but tab, DEL, C1), line and paragraph separators and bidirectional
    /// controls written as escapes (`\x1B`, `\u2028`), so that it stays on one line and cannot drive a
    /// terminal; cut to `limit` characters with "…".
    public static func escaped(_ s: String, limit: Int = Int.max, keepTabs: Bool = false) -> String {
        var out = ""
        var count = 0
        for u in s.unicodeScalars {
            if count >= limit {
                out += "…"
                break
            }
            if let e = escape(u, keepTabs: keepTabs) { out += e } else { out.unicodeScalars.append(u) }
            count += 1
        }
        return out
    }

    /// The escape for a scalar that must not reach a terminal as it is, or nil.
    static func escape(_ u: Unicode.Scalar, keepTabs: Bool) -> String? {
        let v = u.value
        func hex(_ x: UInt32, _ width: Int) -> String {
            let h = String(x, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, width - h.count)) + h
        }
        switch v {
        case 0x09: return keepTabs ? nil : "\\t"
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x00...0x1F, 0x7F...0x9F: return "\\x" + hex(v, 2)
        case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069, 0xFEFF: return "\\u" + hex(v, 4)
        default: return nil
        }
    }

    /// Text quoted from the input in a message: cut to `quoteLimit` characters with "…", line breaks as spaces.
    static func quote(_ s: String) -> String {
        var out = ""
        var count = 0
        for u in s.unicodeScalars {
            if count == quoteLimit {
                out += "…"
                break
            }
            switch u.value {
            case 0x0A, 0x0D, 0x2028, 0x2029: out += " "
            default: out.unicodeScalars.append(u)
            }
            count += 1
        }
        return out
    }

    static func prefix(_ file: String?, _ location: SourceLocation?) -> String {
        guard let file else { return "" }
        let f = escaped(file, limit: messageLimit)
        return location == nil ? f + ": " : f + ":"
    }

    /// Terminal columns a scalar takes (0 for combining marks, 2 for wide East Asian characters and emoji).
    static func width(_ u: Unicode.Scalar) -> Int {
        switch u.properties.generalCategory {
        case .nonspacingMark, .enclosingMark: return 0
        default: break
        }
        switch u.value {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
             0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
             0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD:
            return 2
        default: return 1
        }
    }

    /// The excerpt of the line `lineStart..<lineEnd` of `bytes` (valid UTF-8) around byte `offset`.
    static func excerpt(_ bytes: UnsafeBufferPointer<UInt8>, lineStart: Int, lineEnd: Int, offset: Int) -> SourceExcerpt {
        let at = min(max(offset, lineStart), lineEnd)
        var s = max(lineStart, at - windowBytes)
        var e = min(lineEnd, at + windowBytes)
        while s > lineStart && bytes[s] & 0xC0 == 0x80 { s -= 1 }  // whole characters only
        while e < lineEnd && bytes[e] & 0xC0 == 0x80 { e += 1 }
        var text = s > lineStart ? "…" : ""
        var caret = s > lineStart ? " " : ""
        var column = s > lineStart ? 1 : 0
        func add(_ part: UnsafeBufferPointer<UInt8>, caretToo: Bool) {
            for u in String(decoding: part, as: UTF8.self).unicodeScalars {
                if let esc = escape(u, keepTabs: true) {
                    text += esc
                    if caretToo { caret += String(repeating: " ", count: esc.count); column += esc.count }
                } else {
                    text.unicodeScalars.append(u)
                    if caretToo {
                        if u == "\t" {
                            caret += "\t"
                            column += 1
                        } else {
                            let w = width(u)
                            caret += String(repeating: " ", count: w)
                            column += w
                        }
                    }
                }
            }
        }
        add(UnsafeBufferPointer(rebasing: bytes[s..<at]), caretToo: true)
        add(UnsafeBufferPointer(rebasing: bytes[at..<e]), caretToo: false)
        if e < lineEnd { text += "…" }
        return SourceExcerpt(text: text, caretColumn: column, caretLine: caret + "^")
    }
}

/// Collects warnings up to a limit and counts the rest: each costs O(1), and the message of one that will not be
/// reported is never built. (A class, so that adding one does not modify the parser whose state the message is
/// made from.)
final class WarningCollector {
    let limit: Int
    /// The first `limit + 1` warnings: (byte offset or -1, message).
    private(set) var kept: [(Int, String)] = []
    private(set) var total = 0

    init(limit: Int) {
        self.limit = max(0, limit)
    }

    var isEmpty: Bool { total == 0 }

    @inline(__always) func add(_ at: Int, _ message: @autoclosure () -> String) {
        total += 1
        if kept.count <= limit { kept.append((at, message())) }
    }

    /// The reported warnings of two collectors, in text order: at most `limit`,
    /// then one that counts the rest, at the place of the first one left out. Locations are computed in one
    /// pass over the text. Returns the warnings and how many were left out.
    static func merge(_ a: WarningCollector, _ b: WarningCollector, limit: Int, bytes: UnsafeBufferPointer<UInt8>) -> ([Warning], Int) {
        let total = a.total + b.total
        if total == 0 { return ([], 0) }
        // in text order (a statement's warnings are not always found in text order), the order found within a place
        let all = (a.kept + b.kept).enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element)
        let shown = min(limit, all.count)
        let omitted = total - shown
        let places = all.prefix(omitted > 0 ? shown + 1 : shown).map(\.0)
        let idx = LineIndex(bytes)
        let locations = idx.locations(ascending: places)
        var warnings: [Warning] = []
        warnings.reserveCapacity(places.count)
        for i in 0..<shown { warnings.append(Warning(message: all[i].1, location: locations[i])) }
        if omitted > 0 {
            warnings.append(Warning(message: "\(omitted) more warning\(omitted == 1 ? "" : "s") not shown (the first \(shown) are)",
                                    location: locations[shown]))
        }
        return (warnings, omitted)
    }

    /// The warnings without a place (from the serializer), with one that counts those left out.
    func locationless() -> [Warning] {
        var warnings = kept.prefix(limit).map { Warning(message: $0.1, location: nil) }
        let omitted = total - warnings.count
        if omitted > 0 {
            warnings.append(Warning(message: "\(omitted) more warning\(omitted == 1 ? "" : "s") not shown (the first \(limit) are)"))
        }
        return warnings
    }
}

/// Maps byte offsets to lines and columns.
struct LineIndex {
    private var starts: [Int] = [0]
    let bytes: UnsafeBufferPointer<UInt8>  // valid while the parse that made this index runs

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
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

    /// The index of the line that holds `offset`.
    private func lineNumber(_ offset: Int) -> Int {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// UTF-16 code units in bytes[from..<to] (valid UTF-8).
    private func utf16Count(_ from: Int, _ to: Int) -> Int {
        var units = 0
        var i = from
        while i < to {
            let c = bytes[i]
            if c & 0xC0 != 0x80 { units += c >= 0xF0 ? 2 : 1 }
            i += 1
        }
        return units
    }

    /// O(length of the line up to the offset).
    func location(_ offset: Int) -> SourceLocation {
        let line = lineNumber(offset)
        let col = 1 + utf16Count(starts[line], min(offset, bytes.count))
        return SourceLocation(offset: offset, line: line + 1, column: col)
    }

    /// The locations of offsets in ascending order, in one pass: O(number of offsets × log lines + the text they
    /// cover), however many are on one line.
    func locations(ascending offsets: [Int]) -> [SourceLocation] {
        var out: [SourceLocation] = []
        out.reserveCapacity(offsets.count)
        var prevLine = -1, prevOffset = 0, prevCol = 1
        for offset in offsets {
            let line = lineNumber(offset)
            let end = min(offset, bytes.count)
            let col: Int
            if line == prevLine && end >= prevOffset {
                col = prevCol + utf16Count(prevOffset, end)
            } else {
                col = 1 + utf16Count(starts[line], end)
            }
            (prevLine, prevOffset, prevCol) = (line, end, col)
            out.append(SourceLocation(offset: offset, line: line + 1, column: col))
        }
        return out
    }

    /// The end of the line that holds `from` (before its line break), or `limit` if that comes first.
    private func lineEnd(from: Int, limit: Int) -> Int {
        var e = from
        while e < min(limit, bytes.count) {
            let c = bytes[e]
            if c == 10 || c == 13 { break }
            if c == 0xE2 && e + 2 < bytes.count && bytes[e + 1] == 0x80 && (bytes[e + 2] == 0xA8 || bytes[e + 2] == 0xA9) { break }
            e += 1
        }
        return e
    }

    /// An error at `offset`, with its location and a window of its line.
    func error(_ kind: FBPError.Kind, _ message: String, at offset: Int, expected: [String] = [], found: String? = nil) -> FBPError {
        let loc = location(offset)
        let s = starts[loc.line - 1]
        let at = min(offset, bytes.count)
        // (the line's end as far as the window reaches: a longer line is cut there anyway)
        let e = lineEnd(from: at, limit: at + Diagnostics.windowBytes + 4)
        let excerpt = Diagnostics.excerpt(bytes, lineStart: s, lineEnd: e, offset: at)
        return FBPError(kind: kind, message: message, location: loc, sourceLine: excerpt.text, expected: expected, found: found,
                        excerpt: excerpt)
    }
}
