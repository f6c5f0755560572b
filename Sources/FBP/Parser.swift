import MsgFlo
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A hand-written parser for the `.fbp` language that follows the reference PEG grammar
// (fbp-dsl.md §3) rule by rule: ordered choice, committed optionals, and the same "furthest
// failure" bookkeeping PEG.js uses, so syntax errors name what the reference would expect.
//
// Everything that could nest or chain is iterative: connection chains and JSON values keep
// explicit stacks, and lines are a loop. The parser works on UTF-8 bytes.

/// What a failed match at some position expected. Descriptions are the reference's.
enum Expect: UInt8, CaseIterable {
    case space, inport, outport, defaultInport, defaultOutport, dot, colon, comma, hash, at, arrow
    case quote, lparen, rparen, lbracket, rbracket, lbrace, rbrace, falseLit, nullLit, trueLit
    case newline, notNewline, nameStart, nameChar, compChar, metaChar, portChar, digit
    case annKey, annValue, backslash, squoteClass, notSquote, number, string, endOfInput

    var text: String {
        switch self {
        case .space: return "\" \""
        case .inport: return "\"INPORT=\""
        case .outport: return "\"OUTPORT=\""
        case .defaultInport: return "\"DEFAULT_INPORT=\""
        case .defaultOutport: return "\"DEFAULT_OUTPORT=\""
        case .dot: return "\".\""
        case .colon: return "\":\""
        case .comma: return "\",\""
        case .hash: return "\"#\""
        case .at: return "\"@\""
        case .arrow: return "\"->\""
        case .quote: return "\"'\""
        case .lparen: return "\"(\""
        case .rparen: return "\")\""
        case .lbracket: return "\"[\""
        case .rbracket: return "\"]\""
        case .lbrace: return "\"{\""
        case .rbrace: return "\"}\""
        case .falseLit: return "\"false\""
        case .nullLit: return "\"null\""
        case .trueLit: return "\"true\""
        case .newline: return "[\\n\\r\\u2028\\u2029]"
        case .notNewline: return "[^\\n\\r\\u2028\\u2029]"
        case .nameStart: return "[a-zA-Z_]"
        case .nameChar: return "[a-zA-Z0-9_\\-]"
        case .compChar: return "[a-zA-Z/\\-0-9_]"
        case .metaChar: return "[a-zA-Z/=_,0-9]"
        case .portChar: return "[a-zA-Z.0-9_]"
        case .digit: return "[0-9]"
        case .annKey: return "[a-zA-Z0-9\\-_]"
        case .annValue: return "[a-zA-Z0-9\\-_ \\.]"
        case .backslash: return "[\\\\]"
        case .squoteClass: return "[']"
        case .notSquote: return "[^']"
        case .number: return "number"
        case .string: return "string"
        case .endOfInput: return "end of input"
        }
    }
}

// Character classes as 256-entry tables.
private func table(_ ranges: [ClosedRange<UInt8>]) -> [Bool] {
    var t = [Bool](repeating: false, count: 256)
    for r in ranges { for c in r { t[Int(c)] = true } }
    return t
}
private let AZ: [ClosedRange<UInt8>] = [65...90, 97...122]
private func ch(_ s: Unicode.Scalar) -> ClosedRange<UInt8> { UInt8(s.value)...UInt8(s.value) }
let classNameStart = table(AZ + [ch("_")])
let classNameChar = table(AZ + [48...57, ch("_"), ch("-")])
let classCompChar = table(AZ + [48...57, ch("/"), ch("-"), ch("_")])
let classMetaChar = table(AZ + [48...57, ch("/"), ch("="), ch("_"), ch(",")])
let classPortChar = table(AZ + [48...57, ch("."), ch("_")])
let classAnnKey = table(AZ + [48...57, ch("-"), ch("_")])
let classAnnValue = table(AZ + [48...57, ch("-"), ch("_"), ch(" "), ch(".")])

/// The same classes as bit flags in one 256-byte table, reached through a pointer the parser
/// keeps, so that its loops do no global-variable access or bounds checks.
enum CC {
    static let nameStart: UInt8 = 1
    static let nameChar: UInt8 = 2
    static let compChar: UInt8 = 4
    static let metaChar: UInt8 = 8
    static let portChar: UInt8 = 16
    static let annKey: UInt8 = 32
    static let annValue: UInt8 = 64
}
nonisolated(unsafe) let classBits: UnsafePointer<UInt8> = {
    let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)  // lives as long as the program
    let classes: [([Bool], UInt8)] = [(classNameStart, CC.nameStart), (classNameChar, CC.nameChar), (classCompChar, CC.compChar),
                                      (classMetaChar, CC.metaChar), (classPortChar, CC.portChar), (classAnnKey, CC.annKey),
                                      (classAnnValue, CC.annValue)]
    for c in 0..<256 {
        var bits: UInt8 = 0
        for (table, bit) in classes where table[c] { bits |= bit }
        t[c] = bits
    }
    return UnsafePointer(t)
}()

/// A port written in the source. Offsets are stored as Int32 to keep chain elements small (inputs
/// are limited to 2 GiB); so is the index, unless it is larger, when it is read again from the text
/// (`FBPReader.portRef`).
struct PortOcc {
    private var s, ne, e, idx: Int32
    var start: Int { Int(s) }
    var nameEnd: Int { Int(ne) }
    var end: Int { Int(e) }
    var hasIndex: Bool { idx != -1 }
    /// The index if one was written and it fits in an Int32, else nil.
    var smallIndex: Int? { idx < 0 ? nil : Int(idx) }
    /// The digits of the index: between "[" and "]".
    var indexDigits: Range<Int> { (nameEnd + 1)..<(end - 1) }
    /// `index` -1 for none; larger than Int32.max for one that must be read again from the text.
    init(start: Int, nameEnd: Int, index: Int, end: Int) {
        s = Int32(truncatingIfNeeded: start)
        ne = Int32(truncatingIfNeeded: nameEnd)
        e = Int32(truncatingIfNeeded: end)
        idx = index > Int(Int32.max) ? -2 : Int32(index)
    }
}

/// A node written in the source: a reference `name`, a declaration `name(Comp:meta)`, or an
/// anonymous node `(Comp:meta)`.
struct NodeOcc {
    enum Kind: UInt8 { case ref, declared, anonymous }
    var kind: Kind
    private var s, ne, cs, ce, ms, me, e: Int32
    var start: Int { Int(s) }
    var nameEnd: Int { Int(ne) }  // == start for anonymous
    var compStart: Int { Int(cs) }
    var compEnd: Int { Int(ce) }
    var metaStart: Int { Int(ms) }  // -1 without metadata
    var metaEnd: Int { Int(me) }
    var end: Int { Int(e) }
    init(kind: Kind, start: Int, nameEnd: Int, compStart: Int, compEnd: Int, metaStart: Int, metaEnd: Int, end: Int) {
        self.kind = kind
        s = Int32(truncatingIfNeeded: start)
        ne = Int32(truncatingIfNeeded: nameEnd)
        cs = Int32(truncatingIfNeeded: compStart)
        ce = Int32(truncatingIfNeeded: compEnd)
        ms = Int32(truncatingIfNeeded: metaStart)
        me = Int32(truncatingIfNeeded: metaEnd)
        e = Int32(truncatingIfNeeded: end)
    }
}

/// An IIP written in the source.
enum IIPValue {
    case quoted(start: Int32, end: Int32, escapes: Bool)  // content range between the quotes
    case json(Int32)  // index into GrammarParser.iipValues (keeps Element trivially copyable)
}

/// One element of a connection chain (fbp-dsl.md §6.1).
enum Element {
    case bridge(PortOcc?, NodeOcc, PortOcc?, start: Int32)
    case outport(NodeOcc, PortOcc?)
    case iip(IIPValue, start: Int32, end: Int32)
    case inport(PortOcc?, NodeOcc, start: Int32)

    var start: Int {
        switch self {
        case .bridge(_, _, _, let s): return Int(s)
        case .outport(let n, _): return n.start
        case .iip(_, let s, _): return Int(s)
        case .inport(_, _, let s): return Int(s)
        }
    }
}

struct GrammarParser {
    let b: UnsafeBufferPointer<UInt8>
    let n: Int
    let cls: UnsafePointer<UInt8>  // classBits
    var maxFail = 0
    var expected: UInt64 = 0
    var nodeMemoPos = -1
    var nodeMemo: NodeOcc? = nil
    var portMemoPos = -1
    var portMemo: PortOcc? = nil
    let caseSensitive: Bool

    /// Set when JSON nests deeper than `maxJSONDepth` (the reference's recursive parser would
    /// overflow its stack; ours refuses, so that values can also be freed and compared safely).
    var depthError: Int? = nil
    static let maxJSONDepth = 1000

    /// JSON IIP values of the current statement.
    var iipValues: [JSONValue] = []

    /// Warnings found while reading JSON values.
    let jsonNotes: WarningCollector

    init(_ b: UnsafeBufferPointer<UInt8>, caseSensitive: Bool, warningLimit: Int = 0) {
        self.b = b
        jsonNotes = WarningCollector(limit: warningLimit)
        self.n = b.count
        self.cls = classBits
        self.caseSensitive = caseSensitive
    }

    // MARK: failure bookkeeping (PEG.js peg$fail)

    @inline(__always) mutating func fail(_ pos: Int, _ e: Expect) {
        if pos < maxFail { return }
        if pos > maxFail {
            maxFail = pos
            expected = 0
        }
        expected |= 1 << UInt64(e.rawValue)
    }

    func syntaxError(kind: FBPError.Kind) -> FBPError {
        if let at = depthError {
            return LineIndex(b).error(kind, "JSON value nested more than \(GrammarParser.maxJSONDepth) levels deep", at: at)
        }
        var descs = Expect.allCases.filter { expected & (1 << UInt64($0.rawValue)) != 0 }.map(\.text)
        descs.sort { Array($0.utf16).lexicographicallyPrecedes(Array($1.utf16)) }
        var found: String? = nil
        var foundDesc = "end of input"
        if maxFail < n {
            let (scalar, _) = decodeScalar(maxFail)
            found = String(Character(scalar))
            foundDesc = "\"" + GrammarParser.escapeFound(scalar) + "\""
        }
        var list = ""
        if descs.count == 1 {
            list = descs[0]
        } else if !descs.isEmpty {
            list = descs.dropLast().joined(separator: ", ") + " or " + descs.last!
        }
        let message = "Expected \(list) but \(foundDesc) found."
        return LineIndex(b).error(kind, message, at: maxFail, expected: descs, found: found)
    }

    func decodeScalar(_ p: Int) -> (Unicode.Scalar, Int) {
        var it = b[p..<min(n, p + 4)].makeIterator()
        var dec = UTF8()
        if case .scalarValue(let s) = dec.decode(&it) {
            return (s, s.value < 0x80 ? 1 : s.value < 0x800 ? 2 : s.value < 0x10000 ? 3 : 4)
        }
        return ("\u{FFFD}", 1)
    }

    /// PEG.js 0.9 `stringEscape` applied to one found character (UTF-16 code unit, like JS).
    static func escapeFound(_ s: Unicode.Scalar) -> String {
        let v = s.value > 0xFFFF ? 0xD800 + ((s.value - 0x10000) >> 10) : s.value
        func hex(_ x: UInt32) -> String { String(x, radix: 16, uppercase: true) }
        switch v {
        case 0x5C: return "\\\\"
        case 0x22: return "\\\""
        case 0x08: return "\\b"
        case 0x09: return "\\t"
        case 0x0A: return "\\n"
        case 0x0C: return "\\f"
        case 0x0D: return "\\r"
        case 0x00...0x0F: return "\\x0" + hex(v)
        case 0x10...0x1F, 0x7F...0xFF: return "\\x" + hex(v)
        case 0x100...0xFFF: return "\\u0" + hex(v)
        case 0x1000...0xFFFF: return "\\u" + hex(v)
        default: return String(Character(s))
        }
    }

    // MARK: lexical helpers

    /// `_ = " "*`
    @inline(__always) mutating func spaces(_ p: Int) -> Int {
        var q = p
        while q < n && b[q] == 32 { q += 1 }
        fail(q, .space)
        return q
    }

    /// `__ = " "+`; -1 on failure.
    @inline(__always) mutating func spaces1(_ p: Int) -> Int {
        if p < n && b[p] == 32 { return spaces(p + 1) }
        fail(p, .space)
        return -1
    }

    /// Length of a newline character at p, or 0.
    @inline(__always) func newlineLength(_ p: Int) -> Int {
        guard p < n else { return 0 }
        let c = b[p]
        if c == 10 || c == 13 { return 1 }
        if c == 0xE2 && p + 2 < n && b[p + 1] == 0x80 && (b[p + 2] == 0xA8 || b[p + 2] == 0xA9) { return 3 }
        return 0
    }

    /// `newline`; -1 on failure.
    @inline(__always) mutating func newline(_ p: Int) -> Int {
        let l = newlineLength(p)
        if l > 0 { return p + l }
        fail(p, .newline)
        return -1
    }

    /// `anychar*`
    mutating func restOfLine(_ p: Int) -> Int {
        var q = p
        while q < n {
            let c = b[q]
            if c == 10 || c == 13 { break }
            if c == 0xE2 && newlineLength(q) == 3 { break }
            q += 1
        }
        fail(q, .notNewline)
        return q
    }

    @inline(__always) mutating func literal(_ p: Int, _ s: StaticString, _ e: Expect) -> Int {
        let len = s.utf8CodeUnitCount
        if p + len <= n {
            let base = s.utf8Start
            var i = 0
            while i < len && b[p + i] == base[i] { i += 1 }
            if i == len { return p + len }
        }
        fail(p, e)
        return -1
    }

    /// Skips bytes of a character class (a `CC` bit).
    @inline(__always) mutating func scan(_ p: Int, _ bit: UInt8, _ e: Expect) -> Int {
        var q = p
        while q < n && cls[Int(b[q])] & bit != 0 { q += 1 }
        fail(q, e)
        return q
    }

    @inline(__always) func isClass(_ p: Int, _ bit: UInt8) -> Bool {
        p < n && cls[Int(b[p])] & bit != 0
    }

    // MARK: names, ports, components

    /// `nodeName`; -1 on failure.
    @inline(__always) mutating func nodeName(_ p: Int) -> Int {
        if isClass(p, CC.nameStart) { return scan(p + 1, CC.nameChar, .nameChar) }
        fail(p, .nameStart)
        return -1
    }

    /// `port = portName portIndex?`. The alternatives of `source` and `destination` try the same
    /// rule at the same place several times; the last result is kept. (Repeating a match would only
    /// repeat its `fail` calls, which change nothing the second time: see `node`.)
    mutating func port(_ p: Int) -> PortOcc? {
        if p == portMemoPos { return portMemo }
        let r = portUncached(p)
        portMemoPos = p
        portMemo = r
        return r
    }

    mutating func portUncached(_ p: Int) -> PortOcc? {
        guard isClass(p, CC.nameStart) else {
            fail(p, .nameStart)
            return nil
        }
        let q = scan(p + 1, CC.portChar, .portChar)
        if q < n && b[q] == UInt8(ascii: "[") {
            var r = q + 1
            if r < n && b[r] >= 48 && b[r] <= 57 {
                var value = 0
                var overflow = false
                while r < n && b[r] >= 48 && b[r] <= 57 {
                    let (m, o1) = value.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int(b[r] - 48))
                    if o1 || o2 { overflow = true } else { value = a }
                    r += 1
                }
                fail(r, .digit)
                if r < n && b[r] == UInt8(ascii: "]") {
                    return PortOcc(start: p, nameEnd: q, index: overflow ? Int.max : value, end: r + 1)  // (see FBPReader.portRef)
                }
                fail(r, .rbracket)
            } else {
                fail(r, .digit)
            }
        } else {
            fail(q, .lbracket)
        }
        return PortOcc(start: p, nameEnd: q, index: -1, end: q)
    }

    /// `component`: returns (compEnd, metaStart, metaEnd, end) or nil. The component text starts at p+1.
    mutating func component(_ p: Int) -> (Int, Int, Int, Int)? {
        guard p < n && b[p] == UInt8(ascii: "(") else {
            fail(p, .lparen)
            return nil
        }
        var q = scan(p + 1, CC.compChar, .compChar)
        let compEnd = q
        var ms = -1, me = -1
        if q < n && b[q] == UInt8(ascii: ":") {
            let r = q + 1
            if isClass(r, CC.metaChar) {
                me = scan(r + 1, CC.metaChar, .metaChar)
                ms = r
                q = me
            } else {
                fail(r, .metaChar)
            }
        } else {
            fail(q, .colon)
        }
        if q < n && b[q] == UInt8(ascii: ")") { return (compEnd, ms, me, q + 1) }
        fail(q, .rparen)
        return nil
    }

    /// `node = nodeName component / nodeName / component`, or with `requireComponent` the first
    /// and last alternatives only.
    ///
    /// The result at the last position is kept, because the alternatives of `source` and
    /// `destination` parse the same node up to three times. Skipping the repeated `fail` calls
    /// changes nothing: the furthest failure position only grows, so a repeated call either
    /// fails before it (ignored) or at it, adding what the first match already added.
    /// `requireComponent` only drops the `nodeName` result, after a `component` attempt at `p`
    /// that is behind the failure the name's scan recorded, so it is derived from the same result.
    mutating func node(_ p: Int, requireComponent: Bool = false) -> NodeOcc? {
        let r: NodeOcc?
        if p == nodeMemoPos {
            r = nodeMemo
        } else {
            r = nodeUncached(p)
            nodeMemoPos = p
            nodeMemo = r
        }
        if requireComponent, let r, r.kind == .ref { return nil }
        return r
    }

    mutating func nodeUncached(_ p: Int) -> NodeOcc? {
        let q = nodeName(p)
        if q >= 0 {
            if let (ce, ms, me, e) = component(q) {
                return NodeOcc(kind: .declared, start: p, nameEnd: q, compStart: q + 1, compEnd: ce, metaStart: ms, metaEnd: me, end: e)
            }
            return NodeOcc(kind: .ref, start: p, nameEnd: q, compStart: q, compEnd: q, metaStart: -1, metaEnd: -1, end: q)
        }
        if let (ce, ms, me, e) = component(p) {
            return NodeOcc(kind: .anonymous, start: p, nameEnd: p, compStart: p + 1, compEnd: ce, metaStart: ms, metaEnd: me, end: e)
        }
        return nil
    }

    /// `(__ port)?`: the port and its end, or nil (position unchanged).
    @inline(__always) mutating func trailingPort(_ p: Int) -> PortOcc? {
        let s = spaces1(p)
        if s < 0 { return nil }
        return port(s)
    }

    // MARK: connection elements

    /// `source = bridge / outport / iip`, returning the element and its end.
    mutating func source(_ p: Int) -> (Element, Int)? {
        let P = port(p)
        let sp = P != nil ? spaces1(P!.end) : -1
        // bridge B1: port __ node __ port
        if sp >= 0, let N = node(sp) {
            if let out = trailingPort(N.end) {
                return (.bridge(P, N, out, start: Int32(truncatingIfNeeded: p)), out.end)
            }
        }
        // bridge B2: (port __)? nodeWithComponent (__ port)?
        let q = sp >= 0 ? sp : p
        if let N = node(q, requireComponent: true) {
            let out = trailingPort(N.end)
            return (.bridge(sp >= 0 ? P : nil, N, out, start: Int32(truncatingIfNeeded: p)), out?.end ?? N.end)
        }
        // outport: node (__ port)?
        if let N = node(p) {
            let out = trailingPort(N.end)
            return (.outport(N, out), out?.end ?? N.end)
        }
        // iip
        if p < n && b[p] == UInt8(ascii: "'") {
            var q = p + 1
            var escapes = false
            while q < n {
                let c = b[q]
                if c == 92 && q + 1 < n && b[q + 1] == 39 {
                    escapes = true
                    q += 2
                    continue
                }
                if c == 39 { break }
                q += 1
            }
            if q < n {
                return (.iip(.quoted(start: Int32(truncatingIfNeeded: p + 1), end: Int32(truncatingIfNeeded: q), escapes: escapes), start: Int32(truncatingIfNeeded: p), end: Int32(truncatingIfNeeded: q + 1)), q + 1)
            }
            if b[q - 1] == 92 && q - 1 > p { fail(q, .squoteClass) }
            fail(q, .backslash)
            fail(q, .notSquote)
            fail(q, .quote)
        } else {
            fail(p, .quote)
        }
        let (v, e) = jsonText(p)
        if let v {
            iipValues.append(v)
            return (.iip(.json(Int32(iipValues.count - 1)), start: Int32(truncatingIfNeeded: p), end: Int32(truncatingIfNeeded: e)), e)
        }
        return nil
    }

    /// `destination = inport` (`(port __)? node`); the bridge alternative can never succeed where
    /// inport failed.
    mutating func destination(_ p: Int) -> (Element, Int)? {
        if let P = port(p) {
            let sp = spaces1(P.end)
            if sp >= 0 {
                guard let N = node(sp) else {
                    _ = node(p, requireComponent: true)  // what the bridge alternative would try
                    return nil
                }
                return (.inport(P, N, start: Int32(truncatingIfNeeded: p)), N.end)
            }
        }
        if let N = node(p) { return (.inport(nil, N, start: Int32(truncatingIfNeeded: p)), N.end) }
        return nil
    }

    /// `connection = source _ "->" _ connection / destination`, without recursion. Returns the
    /// elements (sources then one destination) and the end.
    mutating func connection(_ p: Int, into elems: inout [Element]) -> Int {
        elems.removeAll(keepingCapacity: true)
        if !iipValues.isEmpty { iipValues.removeAll(keepingCapacity: true) }
        var pos = p
        var tryingSource = true
        while true {
            if tryingSource, let (e, q) = source(pos) {
                let r = spaces(q)
                if r + 1 < n && b[r] == 45 && b[r + 1] == 62 {
                    elems.append(e)
                    pos = spaces(r + 2)
                    continue
                }
                fail(r, .arrow)
            }
            // alternative 1 failed at pos: the element must be the final destination
            if let (e, q) = destination(pos) {
                elems.append(e)
                return q
            }
            // connection failed at pos, so the alternative 1 of the previous element fails too
            guard let prev = elems.popLast() else { return -1 }
            pos = prev.start
            tryingSource = false
        }
    }

    // MARK: JSON (RFC 7159 grammar of the reference, iterative)

    @inline(__always) func jsonWS(_ p: Int) -> Int {
        var q = p
        while q < n {
            let c = b[q]
            if c == 32 || c == 9 || c == 10 || c == 13 { q += 1 } else { break }
        }
        return q
    }

    /// `JSON_text = ws value ws`: the value and the end, or (nil, _).
    mutating func jsonText(_ p: Int) -> (JSONValue?, Int) {
        enum Frame {
            case array([JSONValue])
            case object(JSONObject, key: String, keyPos: Int)
        }
        var stack: [Frame] = []
        var pos = jsonWS(p)
        while true {
            // parse one value at pos (leading ws already skipped)
            var value: JSONValue
            let start = pos
            let c: UInt8 = pos < n ? b[pos] : 0
            if c == UInt8(ascii: "f") && literal(pos, "false", .falseLit) >= 0 {
                value = .bool(false); pos += 5
            } else if c == UInt8(ascii: "n") && literal(pos, "null", .nullLit) >= 0 {
                value = .null; pos += 4
            } else if c == UInt8(ascii: "t") && literal(pos, "true", .trueLit) >= 0 {
                value = .bool(true); pos += 4
            } else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                // record what the earlier alternatives expected here
                fail(pos, .falseLit); fail(pos, .nullLit); fail(pos, .trueLit)
                if c == UInt8(ascii: "[") { fail(pos, .lbrace) }
                if stack.count >= GrammarParser.maxJSONDepth {
                    if depthError == nil { depthError = pos }
                    return (nil, pos)
                }
                let q = jsonWS(pos + 1)
                if c == UInt8(ascii: "[") {
                    if q < n && b[q] == UInt8(ascii: "]") {
                        value = .array([]); pos = jsonWS(q + 1)
                    } else {
                        fail(q, .falseLit); fail(q, .nullLit); fail(q, .trueLit); fail(q, .lbrace); fail(q, .lbracket)
                        fail(q, .number); fail(q, .string); fail(q, .rbracket)
                        // empty-array check failed; parse the first element
                        stack.append(.array([]))
                        pos = q
                        continue
                    }
                } else {
                    if q < n && b[q] == UInt8(ascii: "}") {
                        value = .object(JSONObject()); pos = jsonWS(q + 1)
                    } else {
                        guard let (key, kq) = jsonString(q) else {
                            fail(q, .rbrace)
                            return (nil, q)
                        }
                        let r = jsonWS(kq)
                        guard r < n && b[r] == UInt8(ascii: ":") else {
                            fail(r, .colon)
                            return (nil, r)
                        }
                        stack.append(.object(JSONObject(), key: key, keyPos: q))
                        pos = jsonWS(r + 1)
                        continue
                    }
                }
            } else if c == UInt8(ascii: "-") || (c >= 48 && c <= 57) {
                fail(pos, .falseLit); fail(pos, .nullLit); fail(pos, .trueLit); fail(pos, .lbrace); fail(pos, .lbracket)
                guard let (d, q) = jsonNumber(pos) else {
                    fail(pos, .number); fail(pos, .string)
                    return (nil, pos)
                }
                value = .number(d); pos = q
            } else {
                if c != UInt8(ascii: "f") { fail(pos, .falseLit) }
                if c != UInt8(ascii: "n") { fail(pos, .nullLit) }
                if c != UInt8(ascii: "t") { fail(pos, .trueLit) }
                fail(pos, .lbrace); fail(pos, .lbracket); fail(pos, .number)
                guard let (s, q) = jsonString(pos) else { return (nil, pos) }
                value = .string(s); pos = q
            }
            _ = start
            // a value is complete; attach it to the enclosing containers
            while true {
                guard let top = stack.popLast() else { return (value, jsonWS(pos)) }
                let q = jsonWS(pos)
                switch top {
                case .array(var a):
                    a.append(value)
                    if q < n && b[q] == UInt8(ascii: ",") {
                        stack.append(.array(a))
                        pos = jsonWS(q + 1)
                    } else if q < n && b[q] == UInt8(ascii: "]") {
                        fail(q, .comma)
                        value = .array(a); pos = jsonWS(q + 1)
                        continue
                    } else {
                        fail(q, .comma); fail(q, .rbracket)
                        return (nil, q)
                    }
                case .object(var o, let key, let keyPos):
                    if o.contains(key) {
                        jsonNotes.add(keyPos, "duplicate key \"\(Diagnostics.quote(key))\" in a JSON object: the last value wins")
                    }
                    o[key] = value
                    if q < n && b[q] == UInt8(ascii: ",") {
                        let r = jsonWS(q + 1)
                        guard let (k2, kq) = jsonString(r) else { return (nil, r) }
                        let s = jsonWS(kq)
                        guard s < n && b[s] == UInt8(ascii: ":") else {
                            fail(s, .colon)
                            return (nil, s)
                        }
                        stack.append(.object(o, key: k2, keyPos: r))
                        pos = jsonWS(s + 1)
                    } else if q < n && b[q] == UInt8(ascii: "}") {
                        fail(q, .comma)
                        value = .object(o); pos = jsonWS(q + 1)
                        continue
                    } else {
                        fail(q, .comma); fail(q, .rbrace)
                        return (nil, q)
                    }
                }
                break
            }
        }
    }

    /// `number "number"`: parseFloat of the matched text.
    mutating func jsonNumber(_ p: Int) -> (Double, Int)? {
        var q = p
        if q < n && b[q] == UInt8(ascii: "-") { q += 1 }
        guard q < n, b[q] >= 48 && b[q] <= 57 else { return nil }
        let digitsStart = q
        var value = 0
        if b[q] == 48 { q += 1 } else {
            while q < n && b[q] >= 48 && b[q] <= 57 {
                if q - digitsStart < 15 { value = value * 10 + Int(b[q] - 48) }
                q += 1
            }
        }
        var simple = q - digitsStart <= 15  // an integer read exactly in `value` (below 2^53)
        if q + 1 < n && b[q] == UInt8(ascii: ".") && b[q + 1] >= 48 && b[q + 1] <= 57 {
            simple = false
            q += 2
            while q < n && b[q] >= 48 && b[q] <= 57 { q += 1 }
        }
        if q < n && (b[q] == UInt8(ascii: "e") || b[q] == UInt8(ascii: "E")) {
            var r = q + 1
            if r < n && (b[r] == UInt8(ascii: "+") || b[r] == UInt8(ascii: "-")) { r += 1 }
            if r < n && b[r] >= 48 && b[r] <= 57 {
                simple = false
                while r < n && b[r] >= 48 && b[r] <= 57 { r += 1 }
                q = r
            }
        }
        if simple {
            let d = Double(value)
            return (b[p] == UInt8(ascii: "-") ? -d : d, q)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: b[p..<q]), as: UTF8.self)
        return (Double(text) ?? .nan, q)
    }

    /// `string "string"`; on failure records `string` at p.
    mutating func jsonString(_ p: Int) -> (String, Int)? {
        guard p < n && b[p] == 34 else {
            fail(p, .string)
            return nil
        }
        var q = p + 1
        // fast path: no escapes
        while q < n {
            let c = b[q]
            if c == 34 { return (String(decoding: UnsafeBufferPointer(rebasing: b[(p + 1)..<q]), as: UTF8.self), q + 1) }
            if c == 92 || c < 0x20 { break }
            q += 1
        }
        var out = [UInt8](b[(p + 1)..<q])
        var pendingHigh: UInt32? = nil
        func flushHigh(_ out: inout [UInt8], _ notes: WarningCollector, _ at: Int) {
            if pendingHigh != nil {
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
                notes.add(at, "a lone UTF-16 surrogate in a JSON string was replaced by U+FFFD")
                pendingHigh = nil
            }
        }
        while q < n {
            let c = b[q]
            if c == 34 {
                flushHigh(&out, jsonNotes, q)
                return (String(decoding: out, as: UTF8.self), q + 1)
            }
            if c < 0x20 { break }
            if c != 92 {
                flushHigh(&out, jsonNotes, q)
                out.append(c)
                q += 1
                continue
            }
            guard q + 1 < n else { break }
            let e = b[q + 1]
            var simple: UInt8? = nil
            switch e {
            case 34: simple = 34
            case 92: simple = 92
            case 47: simple = 47
            case UInt8(ascii: "b"): simple = 8
            case UInt8(ascii: "f"): simple = 12
            case UInt8(ascii: "n"): simple = 10
            case UInt8(ascii: "r"): simple = 13
            case UInt8(ascii: "t"): simple = 9
            case UInt8(ascii: "u"):
                guard q + 5 < n else { fail(p, .string); return nil }
                var v: UInt32 = 0
                for i in 2...5 {
                    let h = b[q + i]
                    let d: UInt32
                    switch h {
                    case 48...57: d = UInt32(h - 48)
                    case 97...102: d = UInt32(h - 87)
                    case 65...70: d = UInt32(h - 55)
                    default: fail(p, .string); return nil
                    }
                    v = v << 4 | d
                }
                q += 6
                if v >= 0xD800 && v < 0xDC00 {
                    flushHigh(&out, jsonNotes, q)
                    pendingHigh = v
                } else if v >= 0xDC00 && v < 0xE000 {
                    if let h = pendingHigh {
                        let scalar = 0x10000 + ((h - 0xD800) << 10) + (v - 0xDC00)
                        out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                        pendingHigh = nil
                    } else {
                        pendingHigh = 0xDC00
                        flushHigh(&out, jsonNotes, q)
                    }
                } else {
                    flushHigh(&out, jsonNotes, q)
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(v)!)).utf8))
                }
                continue
            default:
                fail(p, .string)
                return nil
            }
            flushHigh(&out, jsonNotes, q)
            out.append(simple!)
            q += 2
        }
        fail(p, .string)
        return nil
    }
}

/// Interns names given as byte ranges, so each distinct node or port name becomes one String and
/// one small integer, with a cheap hash instead of hashing Strings per occurrence.
struct NameTable: Sendable {
    struct Entry {
        var start: Int32
        var count: Int32
        var hash: UInt64
    }
    private var slots: [Int32] = Array(repeating: -1, count: 256)
    private var mask = 255
    private var arena: [UInt8] = []
    private var entries: [Entry] = []

    var count: Int { entries.count }

    mutating func reserveCapacity(names: Int, bytes: Int) {
        entries.reserveCapacity(names)
        arena.reserveCapacity(bytes)
    }

    /// The name as a String (made on demand: writing JSON needs only the bytes).
    subscript(id: Int32) -> String {
        let e = entries[Int(id)]
        return arena.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[Int(e.start)..<Int(e.start + e.count)]), as: UTF8.self) }
    }

    /// All names as Strings, by id.
    func allNames() -> [String] {
        arena.withUnsafeBufferPointer { a in
            entries.map { String(decoding: UnsafeBufferPointer(rebasing: a[Int($0.start)..<Int($0.start + $0.count)]), as: UTF8.self) }
        }
    }

    /// ASCII upper-case letters of a word's bytes made lower-case, eight at a time.
    @inline(__always) static func foldASCII(_ w: UInt64) -> UInt64 {
        let low7 = w & 0x7F7F_7F7F_7F7F_7F7F
        let atLeastA = low7 &+ 0x3F3F_3F3F_3F3F_3F3F  // high bit set where byte >= "A"
        let pastZ = low7 &+ 0x2525_2525_2525_2525  // high bit set where byte > "Z"
        let upper = atLeastA & ~pastZ & ~w & 0x8080_8080_8080_8080
        return w | (upper >> 2)
    }

    /// The 8 bytes at offset i (i + 8 <= n).
    @inline(__always) static func word(_ p: UnsafeRawPointer, _ i: Int, fold: Bool) -> UInt64 {
        let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        return fold ? foldASCII(w) : w
    }

    /// The bytes of a name of 1 to 7 bytes as one word, from loads that may overlap.
    @inline(__always) static func shortWord(_ p: UnsafeRawPointer, _ n: Int, fold: Bool) -> UInt64 {
        let w: UInt64
        if n >= 4 {
            w = UInt64(p.loadUnaligned(as: UInt32.self)) | UInt64(p.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)) << 32
        } else {
            w = UInt64(p.load(as: UInt8.self)) | UInt64(p.load(fromByteOffset: n >> 1, as: UInt8.self)) << 8
                | UInt64(p.load(fromByteOffset: n &- 1, as: UInt8.self)) << 16
        }
        return fold ? foldASCII(w) : w
    }

    @inline(__always) static func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        let m = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        return m ^ (m >> 32)
    }

    /// A multiply-xor hash over 8-byte words (the last one overlapping the one before; the length
    /// goes in first), mixed at the end so its low bits are usable.
    @inline(__always) static func hash(_ p: UnsafeRawPointer, _ n: Int, fold: Bool) -> UInt64 {
        var h = UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15
        if n >= 8 {
            var i = 0
            while i &+ 8 < n {
                h = mix(h, word(p, i, fold: fold))
                i &+= 8
            }
            h = mix(h, word(p, n &- 8, fold: fold))
        } else if n > 0 {
            h = mix(h, shortWord(p, n, fold: fold))
        }
        h = h &* 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 29)
    }

    /// Whether the n bytes at p (folded if `fold`) are the n bytes at q.
    @inline(__always) static func equal(_ p: UnsafeRawPointer, _ q: UnsafeRawPointer, _ n: Int, fold: Bool) -> Bool {
        if n >= 8 {
            var i = 0
            while i &+ 8 < n {
                if word(p, i, fold: fold) != q.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                i &+= 8
            }
            return word(p, n &- 8, fold: fold) == q.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
        }
        if n == 0 { return true }
        return shortWord(p, n, fold: fold) == shortWord(q, n, fold: false)
    }

    /// The id of the name spelled by these bytes.
    mutating func intern(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        intern(bytes, fold: false)
    }

    /// The id of the name spelled by these bytes with ASCII letters lower-cased.
    mutating func internFolded(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        intern(bytes, fold: true)
    }

    @inline(__always) private mutating func intern(_ bytes: UnsafeRawBufferPointer, fold: Bool) -> Int32 {
        let n = bytes.count
        guard let p = bytes.baseAddress, n > 0 else { return internEmpty() }
        let h = NameTable.hash(p, n, fold: fold)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let id = slots[i]
            if id < 0 { break }
            let e = entries[Int(id)]
            if e.hash == h && Int(e.count) == n
                && arena.withUnsafeBytes({ NameTable.equal(p, $0.baseAddress! + Int(e.start), n, fold: fold) }) {
                return id
            }
            i = (i + 1) & mask
        }
        let id = Int32(entries.count)
        slots[i] = id
        entries.append(Entry(start: Int32(truncatingIfNeeded: arena.count), count: Int32(truncatingIfNeeded: n), hash: h))
        if fold {
            for c in bytes { arena.append(c >= 65 && c <= 90 ? c + 32 : c) }
        } else {
            arena.append(contentsOf: bytes)
        }
        if entries.count * 2 > slots.count { grow() }
        return id
    }

    /// The empty name (which the grammar never makes, but strings given to `intern` may be).
    private mutating func internEmpty() -> Int32 {
        let h = NameTable.hash(UnsafeRawPointer(bitPattern: 1)!, 0, fold: false)
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i] >= 0 {
            let id = slots[i]
            if entries[Int(id)].count == 0 { return id }
            i = (i + 1) & mask
        }
        let id = Int32(entries.count)
        slots[i] = id
        entries.append(Entry(start: Int32(truncatingIfNeeded: arena.count), count: 0, hash: h))
        if entries.count * 2 > slots.count { grow() }
        return id
    }

    mutating func intern(_ s: String) -> Int32 {
        var s = s
        return s.withUTF8 { intern(UnsafeRawBufferPointer($0)) }
    }

    /// Calls `body` with the names' bytes.
    func withNames<R>(_ body: (NameBytes) -> R) -> R {
        arena.withUnsafeBufferPointer { a in
            entries.withUnsafeBufferPointer { e in
                var plain = true  // no name needs escaping in JSON (true unless built by hand)
                for c in a where c < 0x20 || c == 34 || c == 92 { plain = false }
                return body(NameBytes(arena: a.baseAddress, entries: e, plain: plain))
            }
        }
    }

    /// Doubles the slots (the table grows with the names, so its memory is what they need).
    private mutating func grow() {
        let size = slots.count * 2
        slots = Array(repeating: -1, count: size)
        mask = size - 1
        for k in 0..<entries.count {
            var i = Int(truncatingIfNeeded: entries[k].hash) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(k)
        }
    }
}

/// The bytes of a name table's names, valid inside `NameTable.withNames`.
struct NameBytes {
    let arena: UnsafePointer<UInt8>?
    let entries: UnsafeBufferPointer<NameTable.Entry>
    let plain: Bool

    @inline(__always) subscript(id: Int32) -> NameRef {
        let e = entries[Int(id)]
        return NameRef(bytes: UnsafeBufferPointer(start: arena.map { $0 + Int(e.start) }, count: Int(e.count)), plain: plain)
    }
}

/// A name by its bytes, written as a JSON string.
struct NameRef: JSONStringWritable {
    let bytes: UnsafeBufferPointer<UInt8>
    let plain: Bool

    @inline(__always) func writeJSON(to sink: inout ByteSink) {
        if plain {
            let n = bytes.count
            sink.reserve(n &+ 2)
            sink.put(34)
            if let p = bytes.baseAddress { sink.putSmall(p, n) }
            sink.put(34)
        } else {
            sink.jsonString(bytes)
        }
    }
}

extension JSONValue {
    /// Parses a complete JSON document (RFC 8259; whitespace is space, tab, CR, LF) with the FBP module's reader:
    /// the graph JSON loader's, with the reference's error messages (FBPError) and lone surrogates replaced by
    /// U+FFFD. Nesting depth is limited only by memory: the reader keeps its own stack. Everything else reads JSON
    /// with ``JSONValue/init(parsing:maximumDepth:)``.
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
