// A small JSON value type that keeps object key order (insertion order), as JavaScript does for
// non-numeric keys, so graphs read back and written out keep the order users wrote.

/// A JSON value. Objects keep their keys in insertion order.
///
/// Equality is by value, the way the conformance tests compare graphs: object key order does not
/// matter, numbers compare numerically (and NaN equals NaN, because both print as `null`), strings
/// by their Unicode scalars (as JavaScript compares them, not by canonical equivalence).
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A String compared and hashed by its Unicode scalars (its UTF-8 bytes), as JavaScript compares strings,
/// rather than by canonical equivalence as Swift's `String ==` does: "\u{2126}" (OHM SIGN) and "\u{3A9}" (GREEK
/// CAPITAL LETTER OMEGA), or "é" precomposed and decomposed, are different keys.
struct ScalarKey: Hashable, Sendable {
    let string: String
    init(_ string: String) { self.string = string }

    static func == (a: ScalarKey, b: ScalarKey) -> Bool { sameScalars(a.string, b.string) }

    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Whether two strings have the same Unicode scalars (not only canonically equivalent ones).
@inline(__always) func sameScalars(_ a: String, _ b: String) -> Bool {
    let x = a.utf8, y = b.utf8
    guard x.count == y.count else { return false }
    if let r = x.withContiguousStorageIfAvailable({ p in
        y.withContiguousStorageIfAvailable { q in p.count == 0 || memcmp(p.baseAddress!, q.baseAddress!, p.count) == 0 }
    }), let r {
        return r
    }
    return x.elementsEqual(y)
}

/// A JSON object whose keys keep insertion order. Setting an existing key replaces its value in
/// place (like assigning a property in JavaScript). Keys are compared by their Unicode scalars, as
/// JavaScript does (see `ScalarKey`), not by canonical equivalence.
public struct JSONObject: Sendable, Sequence {
    public private(set) var keys: [String] = []
    public private(set) var values: [JSONValue] = []
    private var index: [ScalarKey: Int]? = nil  // built once the object grows past a few keys

    public init() {}

    public init(_ pairs: [(String, JSONValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    mutating func reserveCapacity(_ n: Int) {
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
    }

    func position(of key: String) -> Int? {
        if let index { return index[ScalarKey(key)] }
        for i in keys.indices where sameScalars(keys[i], key) { return i }
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
                    index![ScalarKey(key)] = keys.count - 1
                } else if keys.count > 8 {
                    rebuildIndex()
                }
            }
        }
    }

    private mutating func rebuildIndex() {
        var d = [ScalarKey: Int](minimumCapacity: keys.count * 2)
        for (i, k) in keys.enumerated() { d[ScalarKey(k)] = i }
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
        case let (.string(x), .string(y)): return sameScalars(x, y)
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A byte buffer in malloc'd memory, for writing large JSON texts without the per-append overhead
/// of `Array` (uniqueness and capacity checks through generic code). With an `output`, it is a
/// fixed-size buffer that hands full chunks to it (so a big text never sits in memory at once);
/// without, it grows. Not copyable: it owns its memory and frees it when it goes away.
struct ByteSink: ~Copyable {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int
    private let output: ((UnsafeBufferPointer<UInt8>) -> Void)?

    init(capacity: Int, output: ((UnsafeBufferPointer<UInt8>) -> Void)? = nil) {
        let c = max(capacity, 64)
        guard let p = malloc(c) else { fatalError("out of memory") }
        base = p.assumingMemoryBound(to: UInt8.self)
        self.capacity = c
        self.output = output
    }

    deinit { free(base) }

    /// Hands the buffered bytes to `output` (if there is one).
    mutating func flush() {
        if let output, count > 0 {
            output(buffer)
            count = 0
        }
    }

    var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    /// Makes room for `extra` more bytes.
    @inline(__always) mutating func reserve(_ extra: Int) {
        if extra > capacity &- count { grow(extra) }
    }

    @inline(never) mutating func grow(_ extra: Int) {
        if output != nil {
            flush()
            if extra <= capacity { return }
        }
        var c = capacity
        while c - count < extra { c *= 2 }
        guard let p = realloc(base, c) else { fatalError("out of memory") }
        base = p.assumingMemoryBound(to: UInt8.self)
        capacity = c
    }

    /// Appends without checking capacity: callers reserved room first.
    @inline(__always) mutating func put(_ c: UInt8) {
        base[count] = c
        count &+= 1
    }

    /// Appends a few bytes (names, pieces of layout) without a call to memcpy and without checking
    /// capacity: callers reserved room first. Copies whole words, the last one overlapping the
    /// one before, as memcpy does for short lengths.
    @inline(__always) mutating func putSmall(_ p: UnsafePointer<UInt8>, _ n: Int) {
        let d = UnsafeMutableRawPointer(base + count)
        let s = UnsafeRawPointer(p)
        if n >= 8 {
            if n > 64 {
                d.copyMemory(from: s, byteCount: n)
            } else {
                var i = 0
                while i &+ 8 < n {
                    d.storeBytes(of: s.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
                    i &+= 8
                }
                d.storeBytes(of: s.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self), toByteOffset: n &- 8, as: UInt64.self)
            }
        } else if n >= 4 {
            d.storeBytes(of: s.loadUnaligned(as: UInt32.self), as: UInt32.self)
            d.storeBytes(of: s.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self), toByteOffset: n &- 4, as: UInt32.self)
        } else if n > 0 {
            d.storeBytes(of: s.load(as: UInt8.self), as: UInt8.self)
            d.storeBytes(of: s.load(fromByteOffset: n >> 1, as: UInt8.self), toByteOffset: n >> 1, as: UInt8.self)
            d.storeBytes(of: s.load(fromByteOffset: n &- 1, as: UInt8.self), toByteOffset: n &- 1, as: UInt8.self)
        }
        count &+= n
    }

    @inline(__always) mutating func byte(_ c: UInt8) {
        reserve(1)
        put(c)
    }

    @inline(__always) mutating func append(_ p: UnsafePointer<UInt8>, _ n: Int) {
        reserve(n)
        (base + count).update(from: p, count: n)
        count &+= n
    }

    @inline(__always) mutating func append(_ s: StaticString) {
        append(s.utf8Start, s.utf8CodeUnitCount)
    }

    @inline(__always) mutating func append(_ b: UnsafeBufferPointer<UInt8>) {
        if let p = b.baseAddress { append(p, b.count) }
    }

    /// A line break and `n` spaces.
    @inline(__always) mutating func newline(spaces n: Int) {
        reserve(n &+ 1)
        base[count] = 10
        (base + count + 1).initialize(repeating: 32, count: n)
        count &+= n &+ 1
    }

    /// The decimal digits of an integer.
    mutating func integer(_ v: Int64) {
        reserve(20)
        var u = v.magnitude
        if v < 0 { put(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, filled from the end
        withUnsafeMutableBytes(of: &digits) { d in
            var i = 24
            repeat {
                i -= 1
                d[i] = UInt8(truncatingIfNeeded: u % 10) &+ 48
                u /= 10
            } while u != 0
            append(d.baseAddress!.assumingMemoryBound(to: UInt8.self) + i, 24 - i)
        }
    }

    static let hex: StaticString = "0123456789abcdef"

    /// A JSON string literal of UTF-8 bytes, escaped like `JSON.stringify`.
    mutating func jsonString(_ s: UnsafeBufferPointer<UInt8>) {
        let n = s.count
        reserve(n &+ 2)
        put(34)
        guard let p = s.baseAddress else { put(34); return }
        var start = 0
        var i = 0
        while i < n {
            let c = p[i]
            if c >= 0x20 && c != 34 && c != 92 { i &+= 1; continue }
            append(p + start, i - start)
            reserve(6 + n - i)
            put(92)
            switch c {
            case 34: put(34)
            case 92: put(92)
            case 8: put(UInt8(ascii: "b"))
            case 12: put(UInt8(ascii: "f"))
            case 10: put(UInt8(ascii: "n"))
            case 13: put(UInt8(ascii: "r"))
            case 9: put(UInt8(ascii: "t"))
            default:
                put(UInt8(ascii: "u")); put(48); put(48)
                put(ByteSink.hex.utf8Start[Int(c >> 4)]); put(ByteSink.hex.utf8Start[Int(c & 15)])
            }
            i &+= 1
            start = i
        }
        append(p + start, n - start)
        byte(34)
    }

    /// A JSON string literal, escaped like `JSON.stringify`.
    mutating func jsonString(_ s: String) {
        if let done: Void = s.utf8.withContiguousStorageIfAvailable({ jsonString($0) }) { return done }
        let a = Array(s.utf8)
        a.withUnsafeBufferPointer { jsonString($0) }
    }
}

/// Writes JSON the way `JSON.stringify(value, null, indent)` does, into a byte buffer.
public struct JSONWriter {
    public var bytes: [UInt8] = []
    let indentUnit: Int

    /// indent 0 writes compact JSON; otherwise pretty-printed with that many spaces per level.
    public init(indent: Int = 2) {
        indentUnit = indent
    }

    public static func string(_ value: JSONValue, indent: Int = 2) -> String {
        var sink = ByteSink(capacity: 256)
        JSONWriter.write(value, depth: 0, indent: indent, into: &sink)
        return String(decoding: sink.buffer, as: UTF8.self)
    }

    /// Appends a value (iterative, so arbitrarily deep values do not exhaust the stack).
    public mutating func write(_ value: JSONValue, depth: Int = 0) {
        var sink = ByteSink(capacity: 256)
        JSONWriter.write(value, depth: depth, indent: indentUnit, into: &sink)
        bytes.append(contentsOf: sink.buffer)
    }

    /// Appends a JSON string literal, escaped like `JSON.stringify`.
    public mutating func writeString(_ s: String) {
        var sink = ByteSink(capacity: s.utf8.count + 2)
        sink.jsonString(s)
        bytes.append(contentsOf: sink.buffer)
    }

    @inline(__always) static func newline(_ depth: Int, _ indent: Int, _ sink: inout ByteSink) {
        if indent > 0 { sink.newline(spaces: depth * indent) }
    }

    static func writeKey(_ k: String, _ indent: Int, _ sink: inout ByteSink) {
        sink.jsonString(k)
        if indent > 0 { sink.append(": ") } else { sink.byte(UInt8(ascii: ":")) }
    }

    /// A number as `JSON.stringify` writes it.
    static func writeNumber(_ d: Double, _ sink: inout ByteSink) {
        if abs(d) < 9.0e15, d == Double(Int64(d)) {  // (NaN fails the first test)
            sink.integer(Int64(d))  // also -0, which JavaScript writes as 0
        } else {
            var t = numberText(d, json: true)
            t.withUTF8 { sink.append($0) }
        }
    }

    /// Writes a value: the first levels recursively (fast for the usual small values), deeper
    /// ones iteratively, so arbitrarily deep values do not exhaust the stack.
    static func write(_ value: JSONValue, depth: Int, indent: Int, into sink: inout ByteSink) {
        writeShallow(value, depth: depth, indent: indent, levels: 16, into: &sink)
    }

    static func writeShallow(_ value: JSONValue, depth: Int, indent: Int, levels: Int, into sink: inout ByteSink) {
        switch value {
        case .null: sink.append("null")
        case .bool(let b): if b { sink.append("true") } else { sink.append("false") }
        case .number(let d): writeNumber(d, &sink)
        case .string(let s): sink.jsonString(s)
        case .array(let a):
            if a.isEmpty { sink.append("[]"); return }
            if levels == 0 { return writeDeep(value, depth: depth, indent: indent, into: &sink) }
            sink.byte(UInt8(ascii: "["))
            for i in 0..<a.count {
                if i > 0 { sink.byte(UInt8(ascii: ",")) }
                newline(depth + 1, indent, &sink)
                writeShallow(a[i], depth: depth + 1, indent: indent, levels: levels - 1, into: &sink)
            }
            newline(depth, indent, &sink)
            sink.byte(UInt8(ascii: "]"))
        case .object(let o):
            if o.isEmpty { sink.append("{}"); return }
            if levels == 0 { return writeDeep(value, depth: depth, indent: indent, into: &sink) }
            sink.byte(UInt8(ascii: "{"))
            for i in 0..<o.count {
                if i > 0 { sink.byte(UInt8(ascii: ",")) }
                newline(depth + 1, indent, &sink)
                writeKey(o.keys[i], indent, &sink)
                writeShallow(o.values[i], depth: depth + 1, indent: indent, levels: levels - 1, into: &sink)
            }
            newline(depth, indent, &sink)
            sink.byte(UInt8(ascii: "}"))
        }
    }

    /// Writes a value without recursion.
    static func writeDeep(_ value: JSONValue, depth: Int, indent: Int, into sink: inout ByteSink) {
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
                case .null: sink.append("null")
                case .bool(let b): if b { sink.append("true") } else { sink.append("false") }
                case .number(let d): writeNumber(d, &sink)
                case .string(let s): sink.jsonString(s)
                case .array(let a):
                    if a.isEmpty { sink.append("[]") } else {
                        sink.byte(UInt8(ascii: "["))
                        depth += 1
                        newline(depth, indent, &sink)
                        stack.append(.array(a, 1))
                        current = a[0]
                        continue
                    }
                case .object(let o):
                    if o.isEmpty { sink.append("{}") } else {
                        sink.byte(UInt8(ascii: "{"))
                        depth += 1
                        newline(depth, indent, &sink)
                        writeKey(o.keys[0], indent, &sink)
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
                    sink.byte(UInt8(ascii: ","))
                    newline(depth, indent, &sink)
                    stack.append(.array(a, i + 1))
                    current = a[i]
                } else {
                    depth -= 1
                    newline(depth, indent, &sink)
                    sink.byte(UInt8(ascii: "]"))
                }
            case .object(let o, let i):
                if i < o.count {
                    sink.byte(UInt8(ascii: ","))
                    newline(depth, indent, &sink)
                    writeKey(o.keys[i], indent, &sink)
                    stack.append(.object(o, i + 1))
                    current = o.values[i]
                } else {
                    depth -= 1
                    newline(depth, indent, &sink)
                    sink.byte(UInt8(ascii: "}"))
                }
            }
        }
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

