import MsgFlo

/// Options of `FBP.parse` (fbp-dsl.md §1).

public struct ParseOptions: Sendable {
    /// When false (the default, like the reference), port names are lower-cased.
    public var caseSensitive: Bool
    /// Run the post-parse checks of fbp-dsl.md §9.2.
    public var validateContents: Bool
    /// How many warnings to report at most; past it, one more warning counts the rest (`omittedWarnings`).
    /// Messages of warnings past the limit are never made, so millions of them cost little.
    public var warningLimit: Int

    public init(caseSensitive: Bool = false, validateContents: Bool = true, warningLimit: Int = 100) {
        self.caseSensitive = caseSensitive
        self.validateContents = validateContents
        self.warningLimit = warningLimit
    }
}

/// A parsed graph and what the parser wants the user to know about it.
public struct ParseResult: Sendable {
    public var graph: Graph
    /// At most `ParseOptions.warningLimit` warnings in text order, then (if there were more) one that says how
    /// many were left out.
    public var warnings: [Warning]
    /// How many warnings were left out of `warnings`.
    public var omittedWarnings: Int = 0
}

/// The `.fbp` language: parse text into a `Graph`, serialize a `Graph` back to text.
public enum FBP {
    /// The largest port index (`OUT[9007199254740991]`): 2^53 - 1, the largest integer a JSON number (and the
    /// reference parser's JavaScript number) holds exactly. A larger one is an error.
    public static let maxPortIndex = 9_007_199_254_740_991

    /// Parses `.fbp` text. Throws `FBPError` (syntax or validation).
    public static func parse(_ text: String, options: ParseOptions = ParseOptions()) throws -> ParseResult {
        var text = text
        return try text.withUTF8 { try parse(utf8: $0, options: options) }
    }

    /// Parses `.fbp` text given as UTF-8 bytes (which must be valid UTF-8).
    public static func parse(utf8: UnsafeBufferPointer<UInt8>, options: ParseOptions = ParseOptions()) throws -> ParseResult {
        let parsed = try read(utf8: utf8, options: options)
        return ParseResult(graph: parsed.graph, warnings: parsed.warnings, omittedWarnings: parsed.omittedWarnings)
    }

    /// Parses (and validates) `.fbp` text given as UTF-8 bytes (which must be valid UTF-8), like
    /// `parse`, but stops before building the `Graph`: see `ParsedGraph`.
    public static func read(utf8: UnsafeBufferPointer<UInt8>, options: ParseOptions = ParseOptions()) throws -> ParsedGraph {
        var reader = FBPReader(utf8, options: options)
        return try reader.run()
    }

    /// Whether the bytes are well-formed UTF-8 (no overlong forms, surrogates or values past
    /// U+10FFFF), that is, whether `String(decoding:as:)` would keep them as they are.
    public static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let p = bytes.baseAddress else { return true }
        let n = bytes.count
        var i = 0
        while i < n {
            while i + 8 <= n && UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
            if i >= n { break }
            let c = p[i]
            if c < 0x80 {
                i += 1
            } else if c < 0xC2 {
                return false
            } else if c < 0xE0 {
                guard i + 1 < n, p[i + 1] & 0xC0 == 0x80 else { return false }
                i += 2
            } else if c < 0xF0 {
                guard i + 2 < n else { return false }
                let c1 = p[i + 1]
                guard c1 & 0xC0 == 0x80, p[i + 2] & 0xC0 == 0x80 else { return false }
                if c == 0xE0 && c1 < 0xA0 { return false }  // overlong
                if c == 0xED && c1 > 0x9F { return false }  // UTF-16 surrogates
                i += 3
            } else if c < 0xF5 {
                guard i + 3 < n else { return false }
                let c1 = p[i + 1]
                guard c1 & 0xC0 == 0x80, p[i + 2] & 0xC0 == 0x80, p[i + 3] & 0xC0 == 0x80 else { return false }
                if c == 0xF0 && c1 < 0x90 { return false }  // overlong
                if c == 0xF4 && c1 > 0x8F { return false }  // past U+10FFFF
                i += 4
            } else {
                return false
            }
        }
        return true
    }

    /// Calls `body` with the bytes if they are valid UTF-8, else with those of
    /// `String(decoding: bytes, as: UTF8.self)`, where invalid sequences are U+FFFD (as when node
    /// reads a file as "utf-8"). Saves decoding big valid texts into a String first.
    public static func withValidUTF8<R>(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if isValidUTF8(bytes) { return try body(bytes) }
        var text = String(decoding: bytes, as: UTF8.self)
        return try text.withUTF8 { try body($0) }
    }
}

/// A parsed and validated `.fbp` text before it becomes a `Graph`. Its JSON text can be written
/// straight from the parser's interned names, which for big graphs is much faster and smaller
/// than building the `Graph` and writing that (the text is the same, byte for byte).
public struct ParsedGraph: Sendable {
    /// The same warnings as `FBP.parse` gives.
    public let warnings: [Warning]
    /// How many warnings were left out of `warnings` (see `ParseResult.omittedWarnings`).
    public let omittedWarnings: Int
    let records: GraphRecords

    /// The graph, as `FBP.parse` gives it.
    public var graph: Graph { records.makeGraph() }

    /// How many processes the graph has (`graph.processes.count`, without building the graph).
    public var processCount: Int { records.procs.count }

    /// Writes `graph.jsonBytes(indent:)`, followed by a line break if `newline`, in chunks to
    /// `output` (each buffer is valid only during its call), without building the `Graph`.
    public func writeJSON(indent: Int = 2, newline: Bool = false, to output: (UnsafeBufferPointer<UInt8>) -> Void) {
        records.writeJSON(indent: indent, newline: newline, to: output)
    }
}

/// Applies the grammar's actions (fbp-dsl.md §4–§8) as statements are recognised.
struct FBPReader {
    var g: GrammarParser
    let options: ParseOptions
    var b: UnsafeBufferPointer<UInt8> { g.b }
    var n: Int { g.n }

    // processes, by interned ids; the graph's strings are made once per distinct name at the end
    var nodeNames = NameTable()
    var procOfName: [Int32] = []  // name id → index in procs, or -1
    var procs: [ProcRecord] = []
    var portNames = NameTable()
    var portCache = [PortCacheEntry](repeating: PortCacheEntry(word: 0, count: -1, id: -1), count: 256)
    var portCacheCount = 0
    var compNames = NameTable()
    var metas: [JSONObject] = []
    var anonCounters: [String: Int] = [:]

    // connections, with where their ends were written
    var edges: [EdgeRecord] = []
    var edgeData: [JSONValue] = []
    var exportIds: [String: Int32] = [:]  // "i:" / "o:" + public name → node name id

    var inports = OrderedMap<ExportedPort>()
    var outports = OrderedMap<ExportedPort>()
    var inportPos: [String: Int] = [:]
    var outportPos: [String: Int] = [:]
    var properties: JSONObject? = nil

    var defaultIn = "IN"
    var defaultOut = "OUT"
    var defaultInFolded = "in"
    var defaultOutFolded = "out"
    var defaultInId: Int32 = -1  // port name id of the default in-port, once interned
    var defaultOutId: Int32 = -1

    let notes: WarningCollector
    /// Where the first port index too large for a JSON number was written into the graph.
    var indexTooLarge: PortOcc? = nil
    /// The previous statement ended without a comma, comment or line break, so this one continues
    /// the same line (the reference reads juxtaposed statements without a word).
    var juxtaposed = false

    init(_ b: UnsafeBufferPointer<UInt8>, options: ParseOptions) {
        g = GrammarParser(b, caseSensitive: options.caseSensitive, warningLimit: options.warningLimit)
        notes = WarningCollector(limit: options.warningLimit)
        self.options = options
    }

    mutating func run() throws -> ParsedGraph {
        if n >= Int(Int32.max) {
            throw FBPError(kind: .syntax, message: "input too large: .fbp texts are limited to 2 GiB", location: nil, sourceLine: nil, expected: [], found: nil)
        }
        var pos = 0
        var elems: [Element] = []
        elems.reserveCapacity(16)
        // Room for a generous guess (memory not written costs nothing), so that big arrays are
        // not copied as they grow: page faults are a good part of the time.
        let estimate = min(n / 24, 1 << 22)
        nodeNames.reserveCapacity(names: estimate, bytes: min(n / 4, 1 << 26))
        procOfName.reserveCapacity(estimate)
        procs.reserveCapacity(estimate)
        edges.reserveCapacity(estimate)
        // What the grammar expected at the furthest failure only matters when the text does not
        // parse, and keeping track of it is a good part of the work: this pass goes without (each
        // `fail` is one comparison), and a text that does not parse is read again with it, for
        // the message. (No decision of the parser depends on it.)
        g.maxFail = Int.max
        while pos < n {
            let q = line(pos, &elems)
            if q < 0 { break }
            pos = q
        }
        if pos < n {
            var again = FBPReader(b, options: options)
            throw again.syntaxError()
        }
        if let P = indexTooLarge {
            let digits = excerpt(P.indexDigits.lowerBound, P.indexDigits.upperBound)
            throw LineIndex(b).error(.syntax, "port index \(digits) is too large: the largest is \(FBP.maxPortIndex) (2^53 - 1, the largest integer a JSON number holds exactly)", at: P.indexDigits.lowerBound)
        }
        if options.validateContents { try validate() }
        let (warnings, omitted) = WarningCollector.merge(notes, g.jsonNotes, limit: options.warningLimit, bytes: b)
        let records = GraphRecords(caseSensitive: options.caseSensitive, nodeNames: nodeNames, portNames: portNames, compNames: compNames,
                                   procs: procs, metas: metas, edges: edges, edgeData: edgeData, inports: inports, outports: outports,
                                   properties: properties)
        return ParsedGraph(warnings: warnings, omittedWarnings: omitted, records: records)
    }

    /// Parses with the furthest-failure bookkeeping, up to where the text stops parsing, and
    /// returns the syntax error there.
    mutating func syntaxError() -> FBPError {
        var elems: [Element] = []
        var pos = 0
        while pos < n {
            let q = line(pos, &elems)
            if q < 0 { break }
            pos = q
        }
        if pos < n { g.fail(pos, .endOfInput) }
        return g.syntaxError(kind: .syntax)
    }

    // MARK: helpers

    @inline(__always) func str(_ s: Int, _ e: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: b[s..<e]), as: UTF8.self)
    }

    @inline(__always) func bytes(_ s: Int, _ e: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: b.baseAddress! + s, count: e - s)
    }

    /// The id of a port name as it goes into the graph: lower-cased unless case-sensitive.
    /// Port names are few and short and come on almost every line, so a small hash table keyed
    /// by their bytes (up to 128 of them, never evicted) comes first.
    mutating func portNameId(_ s: Int, _ e: Int) -> Int32 {
        let n = e - s
        guard n <= 8, n > 0 else { return internPort(s, e) }
        let p = UnsafeRawPointer(b.baseAddress! + s)
        let w = n == 8 ? p.loadUnaligned(as: UInt64.self) : NameTable.shortWord(p, n, fold: false)
        var slot = Int(truncatingIfNeeded: ((w ^ UInt64(n)) &* 0x9E37_79B9_7F4A_7C15) >> 56)
        while true {
            let c = portCache[slot]
            if c.count < 0 { break }
            if c.word == w && c.count == n { return c.id }
            slot = (slot + 1) & 255
        }
        let id = internPort(s, e)
        if portCacheCount < 128 {
            portCache[slot] = PortCacheEntry(word: w, count: n, id: id)
            portCacheCount += 1
        }
        return id
    }

    mutating func internPort(_ s: Int, _ e: Int) -> Int32 {
        options.caseSensitive ? portNames.intern(bytes(s, e)) : portNames.internFolded(bytes(s, e))
    }

    mutating func portName(_ s: Int, _ e: Int) -> String {
        let id = portNameId(s, e)  // intern first: the table may grow
        return portNames[id]
    }

    /// The port name id and index (-1 for none) of a written port, or of the default port. Indexes are kept as
    /// written, like the reference does, up to `FBP.maxPortIndex`; a larger one is an error (`indexTooLarge`).
    mutating func portRef(_ p: PortOcc?, defaultPort: Bool) -> (Int32, Int) {
        if let p {
            var index = p.smallIndex ?? -1
            if p.hasIndex && index < 0 {
                index = 0
                for k in p.indexDigits {
                    let (m, o1) = index.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int(b[k] - 48))
                    if o1 || o2 || a > FBP.maxPortIndex {
                        if indexTooLarge == nil { indexTooLarge = p }
                        index = 0
                        break
                    }
                    index = a
                }
            }
            return (portNameId(p.start, p.nameEnd), index)
        }
        if defaultPort {
            if defaultInId < 0 { defaultInId = portNames.intern(options.caseSensitive ? defaultIn : defaultInFolded) }
            return (defaultInId, -1)
        }
        if defaultOutId < 0 { defaultOutId = portNames.intern(options.caseSensitive ? defaultOut : defaultOutFolded) }
        return (defaultOutId, -1)
    }

    /// A warning at byte offset `at`. The message is made only if the warning will be reported.
    @inline(__always) func warn(_ at: Int, _ message: @autoclosure () -> String) {
        notes.add(at, message())
    }

    /// Text quoted in a message, cut (see `Diagnostics.quote`).
    @inline(__always) func q(_ s: String) -> String { Diagnostics.quote(s) }

    /// Source text of a range for messages, with line breaks shown as spaces and long text cut (see
    /// `Diagnostics.quote`): O(1) however long the range.
    func excerpt(_ s: Int, _ e: Int) -> String {
        var cut = min(e, s + 4 * Diagnostics.quoteLimit + 4)
        while cut < e && b[cut] & 0xC0 == 0x80 { cut += 1 }  // whole characters
        let q = Diagnostics.quote(str(s, cut))
        return cut < e && !q.hasSuffix("…") ? q + "…" : q
    }

    // MARK: lines

    /// `line`: one alternative of the reference's `line` rule; returns the end or -1.
    mutating func line(_ p: Int, _ elems: inout [Element]) -> Int {
        let q = g.spaces(p)
        let c: UInt8 = q < n ? b[q] : 0
        // INPORT= / OUTPORT= / DEFAULT_INPORT= / DEFAULT_OUTPORT=
        if c == UInt8(ascii: "I") {
            let r = g.literal(q, "INPORT=", .inport)
            if r >= 0, let e = exportLine(q, r, inport: true) { return e }
        } else { g.fail(q, .inport) }
        if c == UInt8(ascii: "O") {
            let r = g.literal(q, "OUTPORT=", .outport)
            if r >= 0, let e = exportLine(q, r, inport: false) { return e }
        } else { g.fail(q, .outport) }
        if c == UInt8(ascii: "D") {
            for inport in [true, false] {
                let r = inport ? g.literal(q, "DEFAULT_INPORT=", .defaultInport) : g.literal(q, "DEFAULT_OUTPORT=", .defaultOutport)
                if r >= 0 {
                    let e = portNameOnly(r)
                    if e >= 0 {
                        let name = str(r, e)
                        if inport {
                            defaultIn = name; defaultInFolded = name.lowercased(); defaultInId = -1
                        } else {
                            defaultOut = name; defaultOutFolded = name.lowercased(); defaultOutId = -1
                        }
                        return terminator(g.spaces(e))
                    }
                }
            }
        } else {
            g.fail(q, .defaultInport)
            g.fail(q, .defaultOutport)
        }
        // annotation newline
        if let (ks, ke, vs, ve) = annotation(p) {
            let nl = g.newline(ve)
            if nl >= 0 {
                registerAnnotation(str(ks, ke), str(vs, ve), at: p)
                juxtaposed = false
                return nl
            }
        }
        // comment newline?
        if c == UInt8(ascii: "#") {
            let e = g.restOfLine(q + 1)
            checkAnnotationLike(hash: q, lineStart: p, end: e, afterStatement: false)
            juxtaposed = false
            let l = g.newlineLength(e)
            if l > 0 { return e + l }
            g.fail(e, .newline)
            return e
        }
        g.fail(q, .hash)
        // _ newline
        let nl = g.newline(q)
        if nl >= 0 {
            juxtaposed = false
            return nl
        }
        // _ connection _ LineTerminator?
        let ce = g.connection(q, into: &elems)
        if ce < 0 { return -1 }
        commitConnection(elems)
        return terminator(g.spaces(ce))
    }

    /// `LineTerminator? = _ ","? comment? newline?` (always matches); p is after `_`.
    mutating func terminator(_ p: Int) -> Int {
        var q = p
        var ended = false
        if q < n && b[q] == UInt8(ascii: ",") {
            q += 1
            ended = true
        } else {
            g.fail(q, .comma)
        }
        let c = g.spaces(q)
        if c < n && b[c] == UInt8(ascii: "#") {
            q = g.restOfLine(c + 1)
            checkAnnotationLike(hash: c, lineStart: -1, end: q, afterStatement: true)
            ended = true
        } else {
            g.fail(c, .hash)
        }
        let l = g.newlineLength(q)
        if l > 0 {
            q += l
            ended = true
        } else {
            g.fail(q, .newline)
        }
        juxtaposed = !ended && q < n
        return q
    }

    /// `portName` without index; returns the end or -1.
    mutating func portNameOnly(_ p: Int) -> Int {
        if g.isClass(p, CC.nameStart) { return g.scan(p + 1, CC.portChar, .portChar) }
        g.fail(p, .nameStart)
        return -1
    }

    /// `"INPORT=" node "." portName ":" portName _ LineTerminator?` after the keyword.
    mutating func exportLine(_ lineStart: Int, _ r: Int, inport: Bool) -> Int? {
        guard let N = g.node(r) else { return nil }
        guard N.end < n && b[N.end] == UInt8(ascii: ".") else {
            g.fail(N.end, .dot)
            return nil
        }
        let pe = portNameOnly(N.end + 1)
        guard pe >= 0 else { return nil }
        guard pe < n && b[pe] == UInt8(ascii: ":") else {
            g.fail(pe, .colon)
            return nil
        }
        let ue = portNameOnly(pe + 1)
        guard ue >= 0 else { return nil }
        let pid = resolve(N)
        let process = nodeNames[pid]
        exportIds[(inport ? "i:" : "o:") + portName(pe + 1, ue)] = pid
        let port = portName(N.end + 1, pe)
        let pub = portName(pe + 1, ue)
        let kind = inport ? "inport" : "outport"
        if let old = inport ? inports[pub] : outports[pub] {
            warn(lineStart, "exported \(kind) \"\(q(pub))\" is defined again: \(q(old.process + "." + old.port)) is replaced by \(q(process + "." + port)) (the last definition wins)")
        }
        if inport {
            inports[pub] = ExportedPort(process: process, port: port)
            inportPos[pub] = lineStart
        } else {
            outports[pub] = ExportedPort(process: process, port: port)
            outportPos[pub] = lineStart
        }
        return terminator(g.spaces(ue))
    }

    /// `annotation = "#" __ "@" [a-zA-Z0-9\-_]+ __ [a-zA-Z0-9\-_ \.]+` → key and value ranges.
    mutating func annotation(_ p: Int) -> (Int, Int, Int, Int)? {
        guard p < n && b[p] == UInt8(ascii: "#") else {
            g.fail(p, .hash)
            return nil
        }
        let q = g.spaces1(p + 1)
        guard q >= 0 else { return nil }
        guard q < n && b[q] == UInt8(ascii: "@") else {
            g.fail(q, .at)
            return nil
        }
        let ks = q + 1
        guard g.isClass(ks, CC.annKey) else {
            g.fail(ks, .annKey)
            return nil
        }
        let ke = g.scan(ks + 1, CC.annKey, .annKey)
        let vs = g.spaces1(ke)
        guard vs >= 0 else { return nil }
        guard g.isClass(vs, CC.annValue) else {
            g.fail(vs, .annValue)
            return nil
        }
        let ve = g.scan(vs + 1, CC.annValue, .annValue)
        return (ks, ke, vs, ve)
    }

    mutating func registerAnnotation(_ key: String, _ value: String, at: Int) {
        var props = properties ?? JSONObject()
        if key == "runtime" {
            if let old = props["environment"]?["type"]?.stringValue, old != value {
                warn(at, "annotation @runtime given again: \"\(q(old))\" is replaced by \"\(q(value))\" (the last one wins)")
            }
            props["environment"] = .object(JSONObject([("type", .string(value))]))
        } else {
            if let old = props[key], old != .string(value) {
                warn(at, "annotation @\(q(key)) given again: \"\(q(old.javaScriptString))\" is replaced by \"\(q(value))\" (the last one wins)")
            }
            props[key] = .string(value)
        }
        properties = props
    }

    /// A comment that looks like an annotation but is not read as one: say why.
    mutating func checkAnnotationLike(hash: Int, lineStart: Int, end: Int, afterStatement: Bool) {
        var i = hash + 1
        while i < end && b[i] == 32 { i += 1 }
        guard i + 1 < end, b[i] == UInt8(ascii: "@"), classAnnKey[Int(b[i + 1])] else { return }
        var k = i + 1
        while k < end && classAnnKey[Int(b[k])] { k += 1 }
        let key = str(i + 1, k)
        var v = k
        while v < end && b[v] == 32 { v += 1 }
        var reason: String
        if afterStatement {
            reason = "an annotation must be on a line of its own"
        } else if hash != lineStart {
            reason = "an annotation must start in column 1"
        } else if i == hash + 1 {
            reason = "an annotation needs a space between \"#\" and \"@\""
        } else if k < end && b[k] != 32 {
            reason = "the key may contain only letters, digits, \"-\" and \"_\""
        } else if v == end {
            reason = "it has no value"
        } else if let bad = (v..<end).first(where: { !classAnnValue[Int(b[$0])] }) {
            reason = "the value may contain only letters, digits, \"-\", \"_\", \".\" and spaces, not \"\(str(bad, bad + max(1, g.decodeScalar(bad).1)))\""
        } else if end >= n {
            reason = "the last line of the file needs a line break after it"
        } else {
            return
        }
        warn(hash, "\"\(excerpt(hash, end))\" is read as a comment, not as annotation @\(q(key)): \(reason)")
    }

    // MARK: nodes

    /// JS `comp.replace(/[^a-zA-Z0-9]+/, "_")`: only the first run is replaced.
    func anonymousStem(_ s: Int, _ e: Int) -> String {
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        var i = s
        while i < e && alnum(b[i]) { i += 1 }
        if i == e { return str(s, e) }
        var j = i
        while j < e && !alnum(b[j]) { j += 1 }
        return str(s, i) + "_" + str(j, e)
    }

    /// Registers the node's declaration (if any) and returns its name id.
    mutating func resolve(_ N: NodeOcc) -> Int32 {
        let id: Int32
        if N.kind == .anonymous {
            let stem = anonymousStem(N.compStart, N.compEnd)
            let count = (anonCounters[stem] ?? 0) + 1
            anonCounters[stem] = count
            id = nodeNames.intern("_" + stem + "_" + String(count))
        } else {
            id = nodeNames.intern(bytes(N.start, N.nameEnd))
        }
        if Int(id) == procOfName.count { procOfName.append(-1) }
        if N.kind != .ref { declare(id, N) }
        return id
    }

    mutating func declare(_ id: Int32, _ N: NodeOcc) {
        var i = Int(procOfName[Int(id)])
        if i < 0 {
            i = procs.count
            procOfName[Int(id)] = Int32(i)
            procs.append(ProcRecord(name: id, pos: Int32(truncatingIfNeeded: N.start)))
        }
        if N.compEnd > N.compStart {
            let comp = compNames.intern(bytes(N.compStart, N.compEnd))
            let old = procs[i].comp
            if old >= 0 && old != comp {
                warn(N.start, "node \"\(q(nodeNames[id]))\" was declared with component \"\(q(compNames[old]))\"; this declaration replaces it with \"\(q(compNames[comp]))\" (the last one wins)")
            }
            procs[i].comp = comp
        }
        if N.metaStart >= 0 {
            let meta = metadata(N.metaStart, N.metaEnd)
            let old = procs[i].meta
            if old >= 0 {
                if metas[Int(old)] != meta {
                    warn(N.metaStart, "node \"\(q(nodeNames[id]))\": this metadata replaces the metadata declared before (\(q(JSONWriter.string(.object(metas[Int(old)]), indent: 0))))")
                }
                metas[Int(old)] = meta
            } else {
                procs[i].meta = Int32(metas.count)
                metas.append(meta)
            }
        }
    }

    /// `(Comp:k=v,k2=v2)` metadata (fbp-dsl.md §4.2).
    mutating func metadata(_ s: Int, _ e: Int) -> JSONObject {
        var o = JSONObject()
        var items = 1
        for i in s..<e where b[i] == UInt8(ascii: ",") { items += 1 }
        o.reserveCapacity(items)
        var itemStart = s
        while itemStart <= e {
            // the item up to the next ",", and its first two "="
            var itemEnd = itemStart
            var eq1 = -1, eq2 = -1
            while itemEnd < e && b[itemEnd] != UInt8(ascii: ",") {
                if b[itemEnd] == UInt8(ascii: "=") {
                    if eq1 < 0 { eq1 = itemEnd } else if eq2 < 0 { eq2 = itemEnd }
                }
                itemEnd += 1
            }
            let key: String
            let vs: Int, ve: Int
            if eq1 < 0 {
                key = "routes"
                (vs, ve) = (itemStart, itemEnd)
            } else {
                let ks = itemStart
                if eq1 - ks == 1 && b[ks] == UInt8(ascii: "x") {
                    key = "x"
                } else if eq1 - ks == 1 && b[ks] == UInt8(ascii: "y") {
                    key = "y"
                } else {
                    key = str(ks, eq1)
                }
                (vs, ve) = (eq1 + 1, eq2 < 0 ? itemEnd : eq2)
                if eq2 >= 0 {
                    warn(itemStart, "metadata \"\(excerpt(itemStart, itemEnd))\": the text after the second \"=\" is ignored")
                }
            }
            if o.contains(key) {
                warn(itemStart, "metadata key \"\(q(key))\" is given twice in one declaration; the last value wins")
            }
            if key == "x" || key == "y" {
                let (d, used) = parseFloat(vs, ve)
                if d.isNaN || d.isInfinite {
                    warn(itemStart, "metadata \(key)=\"\(excerpt(vs, ve))\" is not a finite number; it becomes null in the JSON graph")
                } else if used != ve - vs {
                    warn(itemStart, "metadata \(key)=\"\(excerpt(vs, ve))\": only the number at the start is used (\(JSONWriter.numberText(d, json: true)))")
                }
                o[key] = .number(d)
            } else {
                o[key] = .string(str(vs, ve))
            }
            itemStart = itemEnd + 1
        }
        return o
    }

    /// JavaScript `parseFloat` for metadata text (which has no signs, dots or spaces): the number
    /// and how many bytes it used.
    func parseFloat(_ s: Int, _ e: Int) -> (Double, Int) {
        let infinity: StaticString = "Infinity"
        if e - s >= 8 && (0..<8).allSatisfy({ b[s + $0] == infinity.utf8Start[$0] }) { return (.infinity, 8) }
        var i = s
        var v = 0
        while i < e && b[i] >= 48 && b[i] <= 57 {
            if i - s < 15 { v = v * 10 + Int(b[i] - 48) }
            i += 1
        }
        if i == s { return (.nan, 0) }
        let exponent = i + 1 < e && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) && b[i + 1] >= 48 && b[i + 1] <= 57
        if !exponent && i - s <= 15 { return (Double(v), i - s) }  // exact: below 2^53
        if exponent {
            i += 1
            while i < e && b[i] >= 48 && b[i] <= 57 { i += 1 }
        }
        return (Double(str(s, i)) ?? .nan, i - s)
    }

    // MARK: connections

    /// Builds the edges of one `connection` statement (fbp-dsl.md §6.2) and warns about what the
    /// reference drops.
    mutating func commitConnection(_ elems: [Element]) {
        if elems.count == 1 {
            guard case .inport(let P, let N, _) = elems[0] else { return }
            let id = resolve(N)  // intern first: the table may grow
            let name = nodeNames[id]
            if let P {
                let port = str(P.start, P.end)
                if N.kind == .ref {
                    warn(P.start, "\"\(q(port + " " + name))\" does nothing: a port and node without \"->\" make no connection")
                } else {
                    warn(P.start, "port \"\(q(port))\" is ignored: a statement without \"->\" only declares a node")
                }
            } else if N.kind == .ref {
                if juxtaposed {
                    warn(N.start, "\"\(q(name))\" is ignored: text after a statement on the same line is read as a separate statement")
                } else {
                    warn(N.start, "\"\(q(name))\" alone does nothing: a node name without a component or \"->\"")
                }
            }
            return
        }
        // The reference flattens all half-edges and pairs a src/data with the tgt right after it
        // (skipping past both). Streaming: `pending` is the previous unpaired src/data, as an edge
        // whose target is not filled in yet.
        var pending = EdgeRecord()
        var hasPending = false
        for i in 0..<elems.count {
            switch elems[i] {
            case .bridge(let inP, let N, let outP, _):
                let id = resolve(N)
                if i == 0 {
                    if let inP {
                        let port = str(inP.start, inP.end)
                        var hint = ""
                        if N.kind == .anonymous && !inP.hasIndex {
                            hint = " (did you mean \"\(q(port + str(N.start, N.compEnd + 1)))\"? A space before \"(\" makes \"\(q(port))\" a port)"
                        }
                        warn(inP.start, "in-port \"\(q(port))\" before the first node of a connection is ignored\(hint)")
                    }
                } else if hasPending {
                    (pending.tgtPort, pending.tgtIndex) = portRef(inP, defaultPort: true)
                    pending.tgtNode = id
                    pending.tgtPos = Int32(truncatingIfNeeded: N.start)
                    edges.append(pending)
                }
                (pending.srcPort, pending.srcIndex) = portRef(outP, defaultPort: false)
                pending.srcNode = id
                pending.srcPos = Int32(truncatingIfNeeded: N.start)
                hasPending = true
            case .outport(let N, let P):
                let id = resolve(N)
                if i > 0 {
                    let name = nodeNames[id]
                    let text = excerpt(N.start, P?.end ?? N.end)
                    warn(N.start, "the connection into \"\(text)\" is dropped: in the middle of a connection a node needs an in-port and an out-port, like \"IN \(q(name)) OUT\" (or a component, like \"\(q(name))()\")")
                }
                (pending.srcPort, pending.srcIndex) = portRef(P, defaultPort: false)
                pending.srcNode = id
                pending.srcPos = Int32(truncatingIfNeeded: N.start)
                hasPending = true
            case .iip(let v, let s32, let end32):
                let s = Int(s32), end = Int(end32)
                if i > 0 {
                    warn(s, "the connection into the IIP \(excerpt(s, end)) is dropped: an arrow cannot point at an IIP")
                }
                let data: JSONValue
                switch v {
                case .json(let j): data = g.iipValues[Int(j)]
                case .quoted(let qs32, let qe32, let escapes):
                    let qs = Int(qs32), qe = Int(qe32)
                    var t = str(qs, qe)
                    if escapes {
                        var out = [UInt8]()
                        out.reserveCapacity(qe - qs)
                        var k = qs
                        while k < qe {
                            if b[k] == 92 && k + 1 < qe && b[k + 1] == 39 { out.append(39); k += 2 } else { out.append(b[k]); k += 1 }
                        }
                        t = String(decoding: out, as: UTF8.self)
                    }
                    data = .string(t)
                }
                pending.srcNode = -1
                pending.srcPort = Int32(edgeData.count)
                pending.srcIndex = -1
                pending.srcPos = s32
                edgeData.append(data)
                hasPending = true
            case .inport(let P, let N, _):
                let id = resolve(N)
                if hasPending {
                    (pending.tgtPort, pending.tgtIndex) = portRef(P, defaultPort: true)
                    pending.tgtNode = id
                    pending.tgtPos = Int32(truncatingIfNeeded: N.start)
                    edges.append(pending)
                }
                hasPending = false
            }
        }
    }

    // MARK: validation (fbp-dsl.md §9.2)

    func validate() throws {
        func fail(_ at: Int, _ message: String) -> FBPError {
            LineIndex(b).error(.validation, message, at: at)
        }
        for p in procs where p.comp < 0 {
            throw fail(Int(p.pos), "Node \"\(q(nodeNames[p.name]))\" does not have a component defined")
        }
        func undefined(_ id: Int32?) -> Bool { id.map { procOfName[Int($0)] < 0 } ?? true }
        for (pub, e) in inports where undefined(exportIds["i:" + pub]) {
            throw fail(inportPos[pub] ?? 0, "Inport \"\(q(pub))\" is connected to an undefined target node \"\(q(e.process))\"")
        }
        for (pub, e) in outports where undefined(exportIds["o:" + pub]) {
            throw fail(outportPos[pub] ?? 0, "Outport \"\(q(pub))\" is connected to an undefined source node \"\(q(e.process))\"")
        }
        for c in edges {
            if procOfName[Int(c.tgtNode)] < 0 {
                let tgt = nodeNames[c.tgtNode]
                if c.srcNode < 0 {
                    throw fail(Int(c.tgtPos), "IIP containing \"\(q(edgeData[Int(c.srcPort)].javaScriptString))\" is connected to an undefined target node \"\(q(tgt))\"")
                }
                throw fail(Int(c.tgtPos), "Edge from \"\(q(nodeNames[c.srcNode]))\" port \"\(q(portNames[c.srcPort]))\" is connected to an undefined target node \"\(q(tgt))\"")
            }
            if c.srcNode >= 0 && procOfName[Int(c.srcNode)] < 0 {
                throw fail(Int(c.srcPos), "Edge to \"\(q(nodeNames[c.tgtNode]))\" port \"\(q(portNames[c.tgtPort]))\" is connected to an undefined source node \"\(q(nodeNames[c.srcNode]))\"")
            }
        }
    }

}

/// What the parser found, by interned ids: the `Graph` is built from it, or its JSON text written.
struct GraphRecords: Sendable {
    var caseSensitive: Bool
    var nodeNames: NameTable
    var portNames: NameTable
    var compNames: NameTable
    var procs: [ProcRecord]
    var metas: [JSONObject]
    var edges: [EdgeRecord]
    var edgeData: [JSONValue]
    var inports: OrderedMap<ExportedPort>
    var outports: OrderedMap<ExportedPort>
    var properties: JSONObject?

    func makeGraph() -> Graph {
        var graph = Graph()
        graph.caseSensitive = caseSensitive
        let names = nodeNames.allNames()
        let comps = compNames.allNames()
        var keys: [String] = []
        var values: [Process] = []
        var index = [ScalarKey: Int](minimumCapacity: procs.count)
        keys.reserveCapacity(procs.count)
        values.reserveCapacity(procs.count)
        for (i, p) in procs.enumerated() {
            let name = names[Int(p.name)]
            keys.append(name)
            values.append(Process(component: p.comp < 0 ? nil : comps[Int(p.comp)], metadata: p.meta < 0 ? nil : metas[Int(p.meta)]))
            index[ScalarKey(name)] = i
        }
        graph.processes = OrderedMap(keys: keys, values: values, index: index)
        let ports = portNames.allNames()
        var connections: [Connection] = []
        connections.reserveCapacity(edges.count)
        for e in edges {
            let tgt = PortRef(process: names[Int(e.tgtNode)], port: ports[Int(e.tgtPort)], index: e.tgtIndex < 0 ? nil : e.tgtIndex)
            if e.srcNode < 0 {
                connections.append(Connection(data: edgeData[Int(e.srcPort)], tgt: tgt))
            } else {
                let src = PortRef(process: names[Int(e.srcNode)], port: ports[Int(e.srcPort)], index: e.srcIndex < 0 ? nil : e.srcIndex)
                connections.append(Connection(src: src, tgt: tgt))
            }
        }
        graph.connections = connections
        graph.inports = inports
        graph.outports = outports
        graph.properties = properties
        return graph
    }

    func writeJSON(indent: Int, newline: Bool, to output: (UnsafeBufferPointer<UInt8>) -> Void) {
        nodeNames.withNames { nodes in
            portNames.withNames { ports in
                compNames.withNames { comps in
                    procs.withUnsafeBufferPointer { procs in
                        edges.withUnsafeBufferPointer { edges in
                            let view = RecordsView(records: self, nodes: nodes, ports: ports, comps: comps, procs: procs, edges: edges)
                            writeGraphJSON(view, indent: indent, newline: newline, to: output)
                        }
                    }
                }
            }
        }
    }
}

/// The records as the JSON writer sees them; names are written from the name tables' bytes.
struct RecordsView: GraphJSONView {
    let records: GraphRecords
    let nodes: NameBytes
    let ports: NameBytes
    let comps: NameBytes
    let procs: UnsafeBufferPointer<ProcRecord>
    let edges: UnsafeBufferPointer<EdgeRecord>

    var inports: OrderedMap<ExportedPort> { records.inports }
    var outports: OrderedMap<ExportedPort> { records.outports }
    var groups: [JSONValue] { [] }
    var properties: JSONObject? { records.properties }
    var caseSensitive: Bool { records.caseSensitive }
    var processCount: Int { procs.count }
    func processName(_ i: Int) -> NameRef { nodes[procs[i].name] }
    func component(_ i: Int) -> NameRef? {
        let c = procs[i].comp
        return c < 0 ? nil : comps[c]
    }
    func metadata(_ i: Int) -> JSONObject? {
        let m = procs[i].meta
        return m < 0 ? nil : records.metas[Int(m)]
    }
    var connectionCount: Int { edges.count }
    @inline(__always) func src(_ i: Int) -> PortView<NameRef>? {
        let e = edges[i]
        if e.srcNode < 0 { return nil }
        return PortView(process: nodes[e.srcNode], port: ports[e.srcPort], index: e.srcIndex < 0 ? nil : e.srcIndex)
    }
    func data(_ i: Int) -> JSONValue? {
        let e = edges[i]
        if e.srcNode >= 0 { return Optional.none }  // (a bare nil would be JSONValue.null)
        return records.edgeData[Int(e.srcPort)]
    }
    @inline(__always) func tgt(_ i: Int) -> PortView<NameRef> {
        let e = edges[i]
        return PortView(process: nodes[e.tgtNode], port: ports[e.tgtPort], index: e.tgtIndex < 0 ? nil : e.tgtIndex)
    }
    func connectionMetadata(_ i: Int) -> JSONObject? { nil }
}

/// A port name of up to 8 bytes (as a word of its bytes, see `NameTable.shortWord`) and its id.
struct PortCacheEntry {
    var word: UInt64
    var count: Int
    var id: Int32
}

/// A process while parsing: interned name, component (-1: none) and metadata (-1: none, else an
/// index into `FBPReader.metas`), and where it was first declared.
struct ProcRecord {
    var name: Int32
    var comp: Int32 = -1
    var meta: Int32 = -1
    var pos: Int32
}

/// A connection while parsing, by interned ids. An IIP has `srcNode` -1 and its value's index
/// in `FBPReader.edgeData` as `srcPort`. Indexes are -1 when not given.
struct EdgeRecord {
    var srcNode: Int32 = -1
    var srcPort: Int32 = -1
    var tgtNode: Int32 = -1
    var tgtPort: Int32 = -1
    var srcIndex = -1
    var tgtIndex = -1
    var srcPos: Int32 = 0
    var tgtPos: Int32 = 0
}
