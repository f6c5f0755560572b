#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Untrusted text made safe for a log line, a table cell or a one-line error: the one escaping rule of the project.
///
/// Names and strings that come from the network or a file (discovery ids, roles, components, labels, port and queue
/// names, graph text echoed in an error) must never move the cursor, start an escape sequence, forge a line of their
/// own or fill a terminal. So:
///
/// - control characters are written as escapes: `\n`, `\r`, `\t`, and `\u001b` style for the rest of C0, DEL and C1
///   (U+0080–U+009F, which some terminals obey as controls);
/// - line and paragraph separators (U+2028, U+2029) and the bidirectional controls (U+061C, U+200E, U+200F,
///   U+202A–U+202E, U+2066–U+2069), which reorder what a reader sees, are escaped the same way;
/// - invalid UTF-8 (``escape(bytes:limit:)``) is written as `\xNN` per byte;
/// - the result is capped: once `limit` bytes are written, the rest is replaced by `…(N bytes more)`, N counting
///   the input's bytes not shown.
///
/// Backslashes are left alone, so ordinary text (paths, regular expressions) reads as written; the escapes are the
/// same as JSON's, so escaping compact JSON text keeps it valid JSON. Escaping escaped text changes nothing.
public enum SafeText {
    /// The cap for one value (a name in an error or a table cell is much shorter in practice).
    public static let defaultLimit = 1024
    /// The cap for a whole log message or error line.
    public static let lineLimit = 4096

    /// Whether `text` holds a NUL byte (which no C string and no AMQP short string in librabbitmq's hands may). One
    /// `memchr` over a native string's bytes: names are checked on every send.
    public static func containsNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { b in b.baseAddress.map { memchr($0, 0, b.count) != nil } ?? false }
    }

    /// `text` with control characters escaped and at most `limit` bytes (`nil`: no cap). `keepingTabs` leaves tabs
    /// as they are, for output whose format has them (msgflo-setup's binding lines).
    public static func escape(_ text: some StringProtocol, limit: Int? = defaultLimit, keepingTabs: Bool = false)
        -> String
    {
        let utf8 = text.utf8
        if utf8.count <= (limit ?? Int.max), !utf8.contains(where: { mayNeedEscape($0) && !(keepingTabs && $0 == 9) }) {
            return String(text)
        }
        var out = Writer(limit: limit, total: utf8.count, keepingTabs: keepingTabs)
        for scalar in text.unicodeScalars {
            if !out.append(scalar) { break }
        }
        return out.finish()
    }

    /// Bytes shown as text: valid UTF-8 as ``escape(_:limit:)`` shows it, each byte of an invalid sequence as `\xNN`.
    public static func escape(bytes: some Collection<UInt8>, limit: Int? = defaultLimit, keepingTabs: Bool = false)
        -> String
    {
        let bytes = Array(bytes)
        if let text = String(validating: bytes, as: UTF8.self) {
            return escape(text, limit: limit, keepingTabs: keepingTabs)
        }
        var out = Writer(limit: limit, total: bytes.count, keepingTabs: keepingTabs)
        var i = 0
        while i < bytes.count {
            if let (scalar, length) = decodeScalar(bytes, at: i) {
                if !out.append(scalar, inputBytes: length) { break }
                i += length
            } else {
                if !out.appendEscape("\\x" + hex(UInt32(bytes[i]), digits: 2), inputBytes: 1) { break }
                i += 1
            }
        }
        return out.finish()
    }

    /// Whether a scalar is written as an escape.
    public static func isEscaped(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// The escape of one scalar (`\n`, `\u001b`), or nil when it is written as it is.
    public static func escaped(_ u: Unicode.Scalar) -> String? {
        guard isEscaped(u) else { return nil }
        switch u {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default: return "\\u" + hex(u.value, digits: 4)
        }
    }

    /// A byte that starts (or is) a scalar that may be escaped: C0, DEL, the lead bytes of C1 (0xC2), of U+061C
    /// (0xD8) and of U+2000–U+2FFF (0xE2).
    @inline(__always)
    static func mayNeedEscape(_ b: UInt8) -> Bool {
        b < 0x20 || b == 0x7F || b == 0xC2 || b == 0xD8 || b == 0xE2
    }

    static func hex(_ v: UInt32, digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    /// Decodes one well-formed UTF-8 scalar at `i`, or nil.
    static func decodeScalar(_ b: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let b0 = b[i]
        if b0 < 0x80 { return (Unicode.Scalar(b0), 1) }
        let length: Int
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return nil
        }
        guard i + length <= b.count else { return nil }
        guard let s = String(validating: b[i..<(i + length)], as: UTF8.self), let u = s.unicodeScalars.first
        else { return nil }
        return (u, length)
    }

    /// Builds the output and stops at the cap. The result, marker included, is at most `limit` bytes, so escaping
    /// it again with the same limit returns it unchanged.
    private struct Writer {
        /// Room kept for the marker: `…(` + up to 20 digits + ` bytes more)`.
        static let markerRoom = 40
        let limit: Int?
        let total: Int
        var keepingTabs = false
        var out = ""
        var written = 0
        var consumed = 0
        /// Where to cut if it does not all fit: the last point with room for the marker.
        var safeWritten = 0
        var safeConsumed = 0

        init(limit: Int?, total: Int, keepingTabs: Bool = false) {
            self.limit = limit
            self.total = total
            self.keepingTabs = keepingTabs
            out.reserveCapacity(min(total, limit ?? total) + 16)
        }

        mutating func append(_ u: Unicode.Scalar, inputBytes: Int? = nil) -> Bool {
            let n = inputBytes ?? UTF8.width(u)
            if !(keepingTabs && u == "\t"), let e = escaped(u) { return appendEscape(e, inputBytes: n) }
            guard fits(UTF8.width(u)) else { return false }
            out.unicodeScalars.append(u)
            advance(UTF8.width(u), n)
            return true
        }

        mutating func appendEscape(_ e: String, inputBytes: Int) -> Bool {
            guard fits(e.utf8.count) else { return false }
            out += e
            advance(e.utf8.count, inputBytes)
            return true
        }

        private func fits(_ n: Int) -> Bool {
            guard let limit else { return true }
            return written + n <= limit
        }

        private mutating func advance(_ w: Int, _ n: Int) {
            written += w
            consumed += n
            if let limit, written > limit - Self.markerRoom { return }
            safeWritten = written
            safeConsumed = consumed
        }

        func finish() -> String {
            if consumed == total { return out }
            return String(decoding: out.utf8.prefix(safeWritten), as: UTF8.self)
                + "…(\(total - safeConsumed) bytes more)"
        }
    }
}
