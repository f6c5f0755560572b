import MsgFlo

/// A JSON document whose objects keep their keys in file order.
///
/// msgflo expands a library's `variables` in the order the file gives them (JavaScript objects keep insertion
/// order), and a later variable may use an earlier one's marker, so the order is part of the meaning. `JSONValue`
/// keeps objects in a dictionary; this small reader exists only for the library file.
package indirect enum OrderedJSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double, text: String)
    case string(String)
    case array([OrderedJSON])
    case object([(key: String, value: OrderedJSON)])

    package static func == (a: OrderedJSON, b: OrderedJSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x, _), .number(let y, _)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    package func hash(into h: inout Hasher) {
        switch self {
        case .null: h.combine(0)
        case .bool(let b): h.combine(b)
        case .number(let d, _): h.combine(d)
        case .string(let s): h.combine(s)
        case .array(let a): h.combine(a)
        case .object(let o): for (k, v) in o { h.combine(k); h.combine(v) }
        }
    }

    package subscript(key: String) -> OrderedJSON? {
        // JSON.parse keeps the last of duplicate keys.
        if case .object(let o) = self { return o.last { $0.key == key }?.value }
        return nil
    }

    package var stringValue: String? { if case .string(let s) = self { return s }; return nil }

    /// Object entries with duplicate keys folded the way JSON.parse does: the first position, the last value.
    package var entries: [(key: String, value: OrderedJSON)]? {
        guard case .object(let o) = self else { return nil }
        var out: [(key: String, value: OrderedJSON)] = []
        var index: [String: Int] = [:]
        for (k, v) in o {
            if let i = index[k] { out[i].value = v } else { index[k] = out.count; out.append((k, v)) }
        }
        return out
    }

    /// JavaScript truthiness, as msgflo's `if config.x` tests use it.
    package var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .number(let d, _): d != 0 && !d.isNaN
        case .string(let s): !s.isEmpty
        case .array, .object: true
        }
    }

    /// The text JavaScript's `String(value)` gives, for values used as command templates.
    package var javaScriptString: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(_, let text): text
        case .string(let s): s
        case .array(let a): a.map { if case .null = $0 { "" } else { $0.javaScriptString } }.joined(separator: ",")
        case .object: "[object Object]"
        }
    }

    package init(parsing text: String) throws(MsgFloError) {
        var p = OrderedJSONParser(Array(text.utf8))
        self = try p.document()
    }
}

private struct OrderedJSONParser {
    let b: [UInt8]
    var i = 0
    var depth = 0
    init(_ b: [UInt8]) { self.b = b }

    func fail(_ what: String) -> MsgFloError {
        var line = 1, col = 1
        for k in 0..<min(i, b.count) { if b[k] == 10 { line += 1; col = 1 } else { col += 1 } }
        return MsgFloError(.invalidMessage, "invalid JSON at line \(line) column \(col): \(what)")
    }

    mutating func ws() {
        while i < b.count, b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13 { i += 1 }
    }

    mutating func document() throws(MsgFloError) -> OrderedJSON {
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        let v = try value()
        ws()
        if i != b.count { throw fail("unexpected text after the document") }
        return v
    }

    mutating func literal(_ word: String, _ v: OrderedJSON) throws(MsgFloError) -> OrderedJSON {
        let w = Array(word.utf8)
        guard b.count - i >= w.count, Array(b[i..<i + w.count]) == w else { throw fail("unexpected character") }
        i += w.count
        return v
    }

    mutating func value() throws(MsgFloError) -> OrderedJSON {
        ws()
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            depth += 1
            if depth > 256 { throw fail("nested too deeply") }
            defer { depth -= 1 }
            i += 1
            var o: [(key: String, value: OrderedJSON)] = []
            ws()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                ws()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try string()
                ws()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                o.append((k, try value()))
                ws()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            depth += 1
            if depth > 256 { throw fail("nested too deeply") }
            defer { depth -= 1 }
            i += 1
            var a: [OrderedJSON] = []
            ws()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                a.append(try value())
                ws()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return try number()
        }
    }

    mutating func number() throws(MsgFloError) -> OrderedJSON {
        let start = i
        while i < b.count, (b[i] >= 48 && b[i] <= 57) || b[i] == 45 || b[i] == 43 || b[i] == 46 || b[i] == 101 || b[i] == 69 {
            i += 1
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        guard !text.isEmpty, let d = Double(text) else { i = start; throw fail("unexpected character") }
        // JavaScript's String(number): whole numbers print without a fraction.
        let js = d.rounded() == d && abs(d) < 1e21 ? String(Int64(d)) : "\(d)"
        return .number(d, text: js)
    }

    mutating func hex4() throws(MsgFloError) -> UInt32 {
        guard b.count - i >= 4 else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            i += 1
            v <<= 4
            switch c {
            case 48...57: v |= UInt32(c - 48)
            case 65...70: v |= UInt32(c - 55)
            case 97...102: v |= UInt32(c - 87)
            default: throw fail("bad \\u escape")
            }
        }
        return v
    }

    mutating func string() throws(MsgFloError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < b.count else { throw fail("unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "u"):
                var u = try hex4()
                if u >= 0xD800 && u < 0xDC00, b.count - i >= 6, b[i] == 92, b[i + 1] == UInt8(ascii: "u") {
                    i += 2
                    let lo = try hex4()
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo &- 0xDC00)
                }
                let scalar = Unicode.Scalar(u) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default: throw fail("bad escape")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
