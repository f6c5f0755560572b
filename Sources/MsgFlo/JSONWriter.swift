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
package struct ByteSink: ~Copyable {
    package private(set) var base: UnsafeMutablePointer<UInt8>
    package private(set) var count = 0
    /// Also escape what ``SafeText`` escapes (DEL, C1, line separators, bidirectional controls) as `\\uXXXX`.
    package var terminalSafe = false
    private var capacity: Int
    private let output: ((UnsafeBufferPointer<UInt8>) -> Void)?

    package init(capacity: Int, output: ((UnsafeBufferPointer<UInt8>) -> Void)? = nil) {
        let c = max(capacity, 64)
        guard let p = malloc(c) else { fatalError("out of memory") }
        base = p.assumingMemoryBound(to: UInt8.self)
        self.capacity = c
        self.output = output
    }

    deinit { free(base) }

    /// Hands the buffered bytes to `output` (if there is one).
    package mutating func flush() {
        if let output, count > 0 {
            output(buffer)
            count = 0
        }
    }

    package var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    /// Makes room for `extra` more bytes.
    @inline(__always) package mutating func reserve(_ extra: Int) {
        if extra > capacity &- count { grow(extra) }
    }

    @inline(never) package mutating func grow(_ extra: Int) {
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
    @inline(__always) package mutating func put(_ c: UInt8) {
        base[count] = c
        count &+= 1
    }

    /// Appends a few bytes (names, pieces of layout) without a call to memcpy and without checking
    /// capacity: callers reserved room first. Copies whole words, the last one overlapping the
    /// one before, as memcpy does for short lengths.
    @inline(__always) package mutating func putSmall(_ p: UnsafePointer<UInt8>, _ n: Int) {
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

    @inline(__always) package mutating func byte(_ c: UInt8) {
        reserve(1)
        put(c)
    }

    @inline(__always) package mutating func append(_ p: UnsafePointer<UInt8>, _ n: Int) {
        reserve(n)
        (base + count).update(from: p, count: n)
        count &+= n
    }

    @inline(__always) package mutating func append(_ s: StaticString) {
        append(s.utf8Start, s.utf8CodeUnitCount)
    }

    @inline(__always) package mutating func append(_ b: UnsafeBufferPointer<UInt8>) {
        if let p = b.baseAddress { append(p, b.count) }
    }

    /// A line break and `n` spaces.
    @inline(__always) package mutating func newline(spaces n: Int) {
        reserve(n &+ 1)
        base[count] = 10
        (base + count + 1).initialize(repeating: 32, count: n)
        count &+= n &+ 1
    }

    /// The decimal digits of an integer.
    package mutating func integer(_ v: Int64) {
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

    package static let hex: StaticString = "0123456789abcdef"

    /// A JSON string literal of UTF-8 bytes, escaped like `JSON.stringify`.
    package mutating func jsonString(_ s: UnsafeBufferPointer<UInt8>) {
        let n = s.count
        reserve(n &+ 2)
        put(34)
        guard let p = s.baseAddress else { put(34); return }
        var start = 0
        var i = 0
        while i < n {
            let c = p[i]
            if c >= 0x20 && c != 34 && c != 92 {
                if !terminalSafe || !SafeText.mayNeedEscape(c) { i &+= 1; continue }
                // DEL, or the lead byte of a scalar SafeText may escape (C1, U+061C, U+2000-U+2FFF)
                let (u, length) = Self.scalar(p, i, n)
                guard let u, SafeText.isEscaped(u) else { i &+= max(length, 1); continue }
                append(p + start, i - start)
                reserve(6 + n - i)
                put(92); put(UInt8(ascii: "u"))
                for shift in [12, 8, 4, 0] as [UInt32] { put(ByteSink.hex.utf8Start[Int((u.value >> shift) & 15)]) }
                i &+= length
                start = i
                continue
            }
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

    /// The scalar of a well-formed UTF-8 sequence of up to 3 bytes at `i` (all SafeText escapes are in the BMP),
    /// and its length; nil (length 1) for anything else.
    @inline(__always) static func scalar(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (Unicode.Scalar?, Int) {
        let b0 = UInt32(p[i])
        if b0 < 0x80 { return (Unicode.Scalar(b0), 1) }
        if b0 >= 0xC2 && b0 <= 0xDF, i + 1 < n, p[i + 1] & 0xC0 == 0x80 {
            return (Unicode.Scalar((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F)), 2)
        }
        if b0 >= 0xE0 && b0 <= 0xEF, i + 2 < n, p[i + 1] & 0xC0 == 0x80, p[i + 2] & 0xC0 == 0x80 {
            let v = (b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F)
            return (Unicode.Scalar(v), 3)
        }
        return (nil, 1)
    }

    /// A JSON string literal, escaped like `JSON.stringify`.
    package mutating func jsonString(_ s: String) {
        if let done: Void = s.utf8.withContiguousStorageIfAvailable({ jsonString($0) }) { return done }
        let a = Array(s.utf8)
        a.withUnsafeBufferPointer { jsonString($0) }
    }
}

/// The project's one JSON printer: writes JSON the way `JSON.stringify(value, null, indent)` does (keys in order,
/// numbers in JavaScript's forms: integers without `.0`, the shortest round-trip digits, `1e+21`, `1e-7`), into a
/// byte buffer. Iterative below the first levels, so arbitrarily deep values do not exhaust the stack.
public struct JSONWriter {
    public var bytes: [UInt8] = []
    package let indentUnit: Int

    /// indent 0 writes compact JSON; otherwise pretty-printed with that many spaces per level.
    public init(indent: Int = 2) {
        indentUnit = indent
    }

    /// The JSON text of a value as `JSON.stringify(value, null, indent)` writes it; with `terminalSafe`, the
    /// characters ``SafeText`` escapes are written as `\\uXXXX` too (still valid JSON for the same value).
    public static func string(_ value: JSONValue, indent: Int = 2, terminalSafe: Bool = false) -> String {
        var sink = ByteSink(capacity: 256)
        sink.terminalSafe = terminalSafe
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

    @inline(__always) package static func newline(_ depth: Int, _ indent: Int, _ sink: inout ByteSink) {
        if indent > 0 { sink.newline(spaces: depth * indent) }
    }

    package static func writeKey(_ k: String, _ indent: Int, _ sink: inout ByteSink) {
        sink.jsonString(k)
        if indent > 0 { sink.append(": ") } else { sink.byte(UInt8(ascii: ":")) }
    }

    /// A number as `JSON.stringify` writes it.
    package static func writeNumber(_ d: Double, _ sink: inout ByteSink) {
        if abs(d) < 9.0e15, d == Double(Int64(d)) {  // (NaN fails the first test)
            sink.integer(Int64(d))  // also -0, which JavaScript writes as 0
        } else {
            var t = numberText(d, json: true)
            t.withUTF8 { sink.append($0) }
        }
    }

    /// Writes a value: the first levels recursively (fast for the usual small values), deeper
    /// ones iteratively, so arbitrarily deep values do not exhaust the stack.
    package static func write(_ value: JSONValue, depth: Int, indent: Int, into sink: inout ByteSink) {
        writeShallow(value, depth: depth, indent: indent, levels: 16, into: &sink)
    }

    package static func writeShallow(_ value: JSONValue, depth: Int, indent: Int, levels: Int, into sink: inout ByteSink) {
        switch value {
        case .null, .bool, .int, .double, .string: writeScalar(value, into: &sink)
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

    /// Writes a value that holds no other (null, a boolean, a number, a string); containers write nothing here.
    private static func writeScalar(_ value: JSONValue, into sink: inout ByteSink) {
        switch value {
        case .null: sink.append("null")
        case .bool(let b): sink.append(b ? "true" : "false")
        case .int(let i): sink.integer(Int64(i))
        case .double(let d): writeNumber(d, &sink)
        case .string(let s): sink.jsonString(s)
        case .array, .object: break
        }
    }

    /// Writes a value without recursion.
    package static func writeDeep(_ value: JSONValue, depth: Int, indent: Int, into sink: inout ByteSink) {
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
                case .null, .bool, .int, .double, .string: writeScalar(v, into: &sink)
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

