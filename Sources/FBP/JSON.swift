// A small JSON value type that keeps object key order (insertion order), as JavaScript does for
// non-numeric keys, so graphs read back and written out keep the order users wrote.

/// A JSON value. Objects keep their keys in insertion order.
///
/// Equality is by value, the way the conformance tests compare graphs: object key order does not
/// matter, numbers compare numerically (and NaN equals NaN, because both print as `null`).
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object whose keys keep insertion order. Setting an existing key replaces its value in
/// place (like assigning a property in JavaScript).
public struct JSONObject: Sendable, Sequence {
    public private(set) var keys: [String] = []
    public private(set) var values: [JSONValue] = []
    private var index: [String: Int]? = nil  // built once the object grows past a few keys

    public init() {}

    public init(_ pairs: [(String, JSONValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    func position(of key: String) -> Int? {
        if let index { return index[key] }
        for i in keys.indices where keys[i] == key { return i }
        return nil
    }

    public func contains(_ key: String) -> Bool { position(of: key) != nil }

    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { values[$0] } }
        set {
            if let i = position(of: key) {
                if let newValue {
                    values[i] = newValue
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    index = nil
                    if keys.count > 8 { rebuildIndex() }
                }
            } else if let newValue {
                keys.append(key)
                values.append(newValue)
                if index != nil {
                    index![key] = keys.count - 1
                } else if keys.count > 8 {
                    rebuildIndex()
                }
            }
        }
    }

    private mutating func rebuildIndex() {
        var d = [String: Int](minimumCapacity: keys.count * 2)
        for (i, k) in keys.enumerated() { d[k] = i }
        index = d
    }

    public func makeIterator() -> Zip2Sequence<[String], [JSONValue]>.Iterator {
        zip(keys, values).makeIterator()
    }
}

extension JSONObject: Equatable {
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.count == b.count else { return false }
        for (k, v) in a {
            guard let w = b[k], v == w else { return false }
        }
        return true
    }
}

extension JSONValue: Equatable {
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y || (x.isNaN && y.isNaN)
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x == y
        default: return false
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var numberValue: Double? { if case .number(let d) = self { return d }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// JavaScript truthiness (used by the reference's validation messages).
    var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .number(let d): return d != 0 && !d.isNaN
        case .string(let s): return !s.isEmpty
        case .array, .object: return true
        }
    }

    /// JavaScript `String(value)`: what the reference interpolates into messages and `.fbp` text.
    var javaScriptString: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return JSONWriter.numberText(d, json: false)
        case .string(let s): return s
        case .array(let a): return a.map { v in v.isNull ? "" : v.javaScriptString }.joined(separator: ",")
        case .object: return "[object Object]"
        }
    }
}

// MARK: - Reading

extension JSONValue {
    /// Parses a complete JSON document (RFC 8259; whitespace is space, tab, CR, LF).
    /// Nesting depth is limited only by memory: the parser keeps its own stack.
    public static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { buf in
            var p = GrammarParser(buf, caseSensitive: true)
            let (value, end) = p.jsonText(0)
            if let value, end == buf.count { return value }
            if value != nil { p.fail(end, .endOfInput) }
            throw p.syntaxError(kind: .json)
        }
    }
}

// MARK: - Writing

/// Writes JSON the way `JSON.stringify(value, null, indent)` does, into a byte buffer.
public struct JSONWriter {
    public var bytes: [UInt8] = []
    let indentUnit: Int

    /// indent 0 writes compact JSON; otherwise pretty-printed with that many spaces per level.
    public init(indent: Int = 2) {
        indentUnit = indent
        bytes.reserveCapacity(1024)
    }

    public static func string(_ value: JSONValue, indent: Int = 2) -> String {
        var w = JSONWriter(indent: indent)
        w.write(value)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    @inline(__always) mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func newline(_ depth: Int) {
        if indentUnit == 0 { return }
        bytes.append(10)
        let count = depth * indentUnit
        if count > 0 { bytes.append(contentsOf: repeatElement(32, count: count)) }
    }

    /// Iterative, so arbitrarily deep values do not exhaust the stack.
    public mutating func write(_ value: JSONValue, depth: Int = 0) {
        enum Frame {
            case array([JSONValue], Int)
            case object(JSONObject, Int)
        }
        var stack: [Frame] = []
        var current: JSONValue? = value
        var depth = depth
        while true {
            if let v = current {
                current = nil
                switch v {
                case .null: raw("null")
                case .bool(let b): if b { raw("true") } else { raw("false") }
                case .number(let d): writeNumber(d)
                case .string(let s): writeString(s)
                case .array(let a):
                    if a.isEmpty { raw("[]") } else {
                        bytes.append(UInt8(ascii: "["))
                        depth += 1
                        newline(depth)
                        stack.append(.array(a, 1))
                        current = a[0]
                        continue
                    }
                case .object(let o):
                    if o.isEmpty { raw("{}") } else {
                        bytes.append(UInt8(ascii: "{"))
                        depth += 1
                        newline(depth)
                        writeKey(o.keys[0])
                        stack.append(.object(o, 1))
                        current = o.values[0]
                        continue
                    }
                }
            }
            // finished a value: continue the enclosing container
            guard let top = stack.popLast() else { return }
            switch top {
            case .array(let a, let i):
                if i < a.count {
                    bytes.append(UInt8(ascii: ","))
                    newline(depth)
                    stack.append(.array(a, i + 1))
                    current = a[i]
                } else {
                    depth -= 1
                    newline(depth)
                    bytes.append(UInt8(ascii: "]"))
                }
            case .object(let o, let i):
                if i < o.count {
                    bytes.append(UInt8(ascii: ","))
                    newline(depth)
                    writeKey(o.keys[i])
                    stack.append(.object(o, i + 1))
                    current = o.values[i]
                } else {
                    depth -= 1
                    newline(depth)
                    bytes.append(UInt8(ascii: "}"))
                }
            }
        }
    }

    mutating func writeKey(_ k: String) {
        writeString(k)
        bytes.append(UInt8(ascii: ":"))
        if indentUnit > 0 { bytes.append(32) }
    }

    mutating func writeNumber(_ d: Double) {
        bytes.append(contentsOf: JSONWriter.numberText(d, json: true).utf8)
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// A JSON string literal, escaped like `JSON.stringify`.
    public mutating func writeString(_ s: String) {
        bytes.append(34)
        var s = s
        s.withUTF8 { buf in
            var start = 0
            for i in 0..<buf.count {
                let c = buf[i]
                if c >= 0x20 && c != 34 && c != 92 { continue }
                if start < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<i])) }
                start = i + 1
                bytes.append(92)
                switch c {
                case 34: bytes.append(34)
                case 92: bytes.append(92)
                case 8: bytes.append(UInt8(ascii: "b"))
                case 12: bytes.append(UInt8(ascii: "f"))
                case 10: bytes.append(UInt8(ascii: "n"))
                case 13: bytes.append(UInt8(ascii: "r"))
                case 9: bytes.append(UInt8(ascii: "t"))
                default:
                    bytes.append(contentsOf: [UInt8(ascii: "u"), 48, 48, JSONWriter.hex[Int(c >> 4)], JSONWriter.hex[Int(c & 15)]])
                }
            }
            if start < buf.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<buf.count])) }
        }
        bytes.append(34)
    }

    /// JavaScript's Number-to-String conversion. In JSON, NaN and the infinities are `null`.
    public static func numberText(_ d: Double, json: Bool) -> String {
        if d.isNaN { return json ? "null" : "NaN" }
        if d.isInfinite { return json ? "null" : (d < 0 ? "-Infinity" : "Infinity") }
        if d == 0 { return "0" }
        if d == d.rounded(), abs(d) < 9.0e15 { return String(Int64(d)) }
        // Shortest round-trip digits from Swift, re-laid out with JavaScript's rules.
        let desc = abs(d).description  // e.g. "1234.5", "1e-07", "1.5e+20", "0.001"
        var mantissa = Substring(desc)
        var exp10 = 0
        if let e = desc.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = desc[..<e]
            var expText = desc[desc.index(after: e)...]
            if expText.first == "+" { expText = expText.dropFirst() }
            exp10 = Int(expText) ?? 0
        }
        var digits = ""
        var pointPos = 0
        if let dot = mantissa.firstIndex(of: ".") {
            let intPart = mantissa[..<dot]
            let frac = mantissa[mantissa.index(after: dot)...]
            digits = String(intPart) + String(frac)
            pointPos = intPart.count
        } else {
            digits = String(mantissa)
            pointPos = digits.count
        }
        // strip leading zeros (adjusting the point) and trailing zeros
        while digits.count > 1, digits.first == "0" { digits.removeFirst(); pointPos -= 1 }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let k = digits.count
        let n = pointPos + exp10  // value = 0.digits * 10^n
        var out = d < 0 ? "-" : ""
        if k <= n && n <= 21 {
            out += digits + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            let i = digits.index(digits.startIndex, offsetBy: n)
            out += digits[..<i] + "." + digits[i...]
        } else if -6 < n && n <= 0 {
            out += "0." + String(repeating: "0", count: -n) + digits
        } else {
            let e = n - 1
            let first = digits.prefix(1)
            let rest = digits.dropFirst()
            out += first + (rest.isEmpty ? "" : "." + rest) + "e" + (e >= 0 ? "+" : "-") + String(abs(e))
        }
        return out
    }
}

