#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The project's one JSON value: messages, discovery, the runtime protocol, graphs (JSON and `.fbp`) and the component
/// library all use it.
///
/// Objects keep their keys in insertion order (as JavaScript does for non-numeric keys), so a graph or a library
/// read and written back keeps the order its author wrote, and a library's `variables` expand in file order.
/// Numbers that are whole and fit keep their integer form (`.int`), so that `5` is sent back as `5`, not `5.0`, and an
/// integer beyond 2^53 passes through a participant exactly; other numbers are doubles, printed as JavaScript's
/// `JSON.stringify` prints them (see ``JSONWriter``).
///
/// Equality is by value, the way JSON.parse results compare: object key order does not matter, numbers compare
/// numerically (`.int(5) == .double(5)`, and NaN equals NaN because both print as `null`), strings by their Unicode
/// scalars (as JavaScript compares them, not by canonical equivalence).
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A number as JavaScript holds it (a double), in the integer form when it is whole and exact (-0 stays a double,
    /// as `parseFloat` keeps its sign).
    public static func number(_ d: Double) -> JSONValue {
        d.rounded() == d && abs(d) < 9.0e15 && !(d == 0 && d.sign == .minus) ? .int(Int(d)) : .double(d)
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }
    /// A JSON number as a double (an integer beyond 2^53 rounded, as JavaScript would hold it).
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    public var numberValue: Double? { doubleValue }
    public var intValue: Int? {
        switch self {
        case .int(let i): i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: Int(d)
        default: nil
        }
    }

    /// JavaScript truthiness (`if (config.x)` in msgflo; the reference's validation messages).
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0 && !d.isNaN
        case .string(let s): !s.isEmpty
        case .array, .object: true
        }
    }

    /// JavaScript's `String(value)`: what msgflo interpolates into messages, command templates and `.fbp` text.
    public var javaScriptString: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): i.magnitude <= 1 << 53 ? String(i) : JSONWriter.numberText(Double(i), json: false)
        case .double(let d): JSONWriter.numberText(d, json: false)
        case .string(let s): s
        case .array(let a): a.map { v in v.isNull ? "" : v.javaScriptString }.joined(separator: ",")
        case .object: "[object Object]"
        }
    }

    /// Parses JSON text (RFC 8259) with the project's parser (``JSONParser``). Top-level scalars are accepted
    /// (msgflo sends `"hello"` and `42` as messages). Nesting deeper than `maximumDepth` is refused rather than
    /// risking the stack on hostile input; of duplicate keys the last value wins, in the first key's place
    /// (as `JSON.parse` does); invalid UTF-8 in a string is refused.
    public init(parsing bytes: some Collection<UInt8>, maximumDepth: Int = JSONValue.maximumDepth) throws(MsgFloError) {
        let array = bytes as? [UInt8] ?? Array(bytes)
        var parser = JSONParser(array, maximumDepth: maximumDepth)
        self = try parser.parseDocument()
    }

    public init(parsing text: String, maximumDepth: Int = JSONValue.maximumDepth) throws(MsgFloError) {
        try self.init(parsing: Array(text.utf8), maximumDepth: maximumDepth)
    }

    public static let maximumDepth = 512

    /// Compact JSON text, keys in their order, numbers as JavaScript prints them, and every character that
    /// ``SafeText`` escapes written as `\uXXXX` (so that JSON shown on a terminal or in a log is as safe as escaped
    /// text). For JSON exactly as `JSON.stringify` writes it, use ``JSONWriter``.
    public var serialized: String { JSONWriter.string(self, indent: 0, terminalSafe: true) }

    public var bytes: [UInt8] { Array(serialized.utf8) }

    public func write(to out: inout String) { out += serialized }

    /// A terminal-safe JSON string literal (as in ``serialized``).
    static func writeString(_ s: String, to out: inout String) { out += JSONValue.string(s).serialized }
}

extension JSONValue: Hashable {
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y || (x.isNaN && y.isNaN)
        case let (.int(x), .double(y)), let (.double(y), .int(x)): return Double(x) == y
        case let (.string(x), .string(y)): return sameScalars(x, y)
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x == y
        default: return false
        }
    }

    public func hash(into h: inout Hasher) {
        switch self {
        case .null: h.combine(0 as UInt8)
        case .bool(let b): h.combine(b)
        case .int(let i): h.combine(Double(i))
        case .double(let d): if d.isNaN { h.combine(1 as UInt8) } else { h.combine(d) }
        case .string(let s): h.combine(ScalarKey(s))
        case .array(let a): h.combine(a)
        case .object(let o): h.combine(o)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { serialized }
}

/// A String compared and hashed by its Unicode scalars (its UTF-8 bytes), as JavaScript compares strings,
/// rather than by canonical equivalence as Swift's `String ==` does: "\u{2126}" (OHM SIGN) and "\u{3A9}" (GREEK
/// CAPITAL LETTER OMEGA), or "é" precomposed and decomposed, are different keys.
package struct ScalarKey: Hashable, Sendable {
    package let string: String
    package init(_ string: String) { self.string = string }

    package static func == (a: ScalarKey, b: ScalarKey) -> Bool { sameScalars(a.string, b.string) }

    package func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Whether two strings have the same Unicode scalars (not only canonically equivalent ones).
@inline(__always) package func sameScalars(_ a: String, _ b: String) -> Bool {
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

    public mutating func reserveCapacity(_ n: Int) {
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
    }

    public func position(of key: String) -> Int? {
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

extension JSONObject: Hashable, ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self.init(elements) }

    /// The entries of a dictionary, keys sorted (a dictionary has no order of its own).
    public init(_ dictionary: [String: JSONValue]) {
        self.init(dictionary.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } as [(String, JSONValue)])
    }

    /// Order does not count, as for ``==``.
    public func hash(into h: inout Hasher) {
        var sum = 0
        for (k, v) in self {
            var e = Hasher()
            e.combine(ScalarKey(k))
            e.combine(v)
            sum &+= e.finalize()
        }
        h.combine(count)
        h.combine(sum)
    }

    /// The values `transform` keeps, as a dictionary.
    public func compactMapValues<T>(_ transform: (JSONValue) throws -> T?) rethrows -> [String: T] {
        var out: [String: T] = [:]
        for (k, v) in self { if let t = try transform(v) { out[k] = t } }
        return out
    }

    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        let old = self[key]
        self[key] = nil
        return old
    }
}
