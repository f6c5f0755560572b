/// Options of `FBP.parse` (fbp-dsl.md §1).
public struct ParseOptions: Sendable {
    /// When false (the default, like the reference), port names are lower-cased.
    public var caseSensitive: Bool
    /// Run the post-parse checks of fbp-dsl.md §9.2.
    public var validateContents: Bool

    public init(caseSensitive: Bool = false, validateContents: Bool = true) {
        self.caseSensitive = caseSensitive
        self.validateContents = validateContents
    }
}

/// A parsed graph and what the parser wants the user to know about it.
public struct ParseResult: Sendable {
    public var graph: Graph
    public var warnings: [Warning]
}

/// The `.fbp` language: parse text into a `Graph`, serialize a `Graph` back to text.
public enum FBP {
    /// Parses `.fbp` text. Throws `FBPError` (syntax or validation).
    public static func parse(_ text: String, options: ParseOptions = ParseOptions()) throws -> ParseResult {
        var text = text
        return try text.withUTF8 { try parse(utf8: $0, options: options) }
    }

    /// Parses `.fbp` text given as UTF-8 bytes (which must be valid UTF-8).
    public static func parse(utf8: UnsafeBufferPointer<UInt8>, options: ParseOptions = ParseOptions()) throws -> ParseResult {
        var reader = FBPReader(utf8, options: options)
        return try reader.run()
    }
}

/// Applies the grammar's actions (fbp-dsl.md §4–§8) as statements are recognised.
struct FBPReader {
    var g: GrammarParser
    let options: ParseOptions
    var b: UnsafeBufferPointer<UInt8> { g.b }
    var n: Int { g.n }

    // processes
    var nodeNames = NameTable()
    var procOfName: [Int32] = []  // name id → index in procs, or -1
    var procNames: [String] = []
    var procs: [Process] = []
    var procPos: [Int] = []
    var portNames = NameTable()
    var scratch: [UInt8] = []
    var anonCounters: [String: Int] = [:]

    // connections, with where their ends were written
    var connections: [Connection] = []
    var connSrcPos: [Int] = []
    var connTgtPos: [Int] = []
    var connSrcId: [Int32] = []
    var connTgtId: [Int32] = []
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

    var notes: [(Int, String)] = []
    /// The previous statement ended without a comma, comment or line break, so this one continues
    /// the same line (the reference reads juxtaposed statements without a word).
    var juxtaposed = false

    init(_ b: UnsafeBufferPointer<UInt8>, options: ParseOptions) {
        g = GrammarParser(b, caseSensitive: options.caseSensitive)
        self.options = options
    }

    mutating func run() throws -> ParseResult {
        if n >= Int(Int32.max) {
            throw FBPError(kind: .syntax, message: "input too large: .fbp texts are limited to 2 GiB", location: nil, sourceLine: nil, expected: [], found: nil)
        }
        var pos = 0
        var elems: [Element] = []
        elems.reserveCapacity(16)
        let estimate = n / 48
        nodeNames = NameTable(capacity: estimate)
        procOfName.reserveCapacity(estimate)
        procNames.reserveCapacity(estimate)
        procs.reserveCapacity(estimate)
        procPos.reserveCapacity(estimate)
        connections.reserveCapacity(estimate)
        connSrcPos.reserveCapacity(estimate)
        connTgtPos.reserveCapacity(estimate)
        connSrcId.reserveCapacity(estimate)
        connTgtId.reserveCapacity(estimate)
        while pos < n {
            let q = line(pos, &elems)
            if q < 0 { break }
            pos = q
        }
        if pos < n {
            g.fail(pos, .endOfInput)
            throw g.syntaxError(kind: .syntax)
        }
        var graph = Graph()
        graph.caseSensitive = options.caseSensitive
        var procIndex = [String: Int](minimumCapacity: procNames.count)
        for (i, name) in procNames.enumerated() { procIndex[name] = i }
        graph.processes = OrderedMap(keys: procNames, values: procs, index: procIndex)
        graph.connections = connections
        graph.inports = inports
        graph.outports = outports
        graph.properties = properties
        if options.validateContents { try validate(graph) }
        var all = notes + g.jsonNotes
        var warnings: [Warning] = []
        if !all.isEmpty {
            if !g.jsonNotes.isEmpty && !notes.isEmpty {
                all = all.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element)
            }
            let idx = LineIndex(b)
            warnings = all.map { Warning(message: $0.1, location: idx.location($0.0)) }
        }
        return ParseResult(graph: graph, warnings: warnings)
    }

    // MARK: helpers

    @inline(__always) func str(_ s: Int, _ e: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: b[s..<e]), as: UTF8.self)
    }

    /// A port name as it goes into the graph: lower-cased unless case-sensitive.
    mutating func portName(_ s: Int, _ e: Int) -> String {
        var i = s
        if !options.caseSensitive { while i < e && !(b[i] >= 65 && b[i] <= 90) { i += 1 } } else { i = e }
        if i == e {
            let id = portNames.intern(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: b[s..<e])))
            return portNames.names[Int(id)]
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: b[s..<e])
        for j in scratch.indices where scratch[j] >= 65 && scratch[j] <= 90 { scratch[j] += 32 }
        let id = scratch.withUnsafeBytes { portNames.intern($0) }
        return portNames.names[Int(id)]
    }

    mutating func portRef(_ process: String, _ p: PortOcc?, defaultPort: Bool) -> PortRef {
        if let p { return PortRef(process: process, port: portName(p.start, p.nameEnd), index: p.index) }
        let d = options.caseSensitive ? (defaultPort ? defaultIn : defaultOut) : (defaultPort ? defaultInFolded : defaultOutFolded)
        return PortRef(process: process, port: d)
    }

    mutating func warn(_ at: Int, _ message: String) {
        notes.append((at, message))
    }

    /// Source text of a range with line breaks shown as spaces and long text cut, for messages.
    func excerpt(_ s: Int, _ e: Int) -> String {
        var t = str(s, min(e, s + 60))
        if e > s + 60 { t += "…" }
        return String(t.map { $0.isNewline ? " " : $0 })
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
                        if inport { defaultIn = name; defaultInFolded = name.lowercased() } else { defaultOut = name; defaultOutFolded = name.lowercased() }
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
        if p < n && classNameStart[Int(b[p])] { return g.scan(p + 1, classPortChar, .portChar) }
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
        let (process, pid) = resolve(N)
        exportIds[(inport ? "i:" : "o:") + portName(pe + 1, ue)] = pid
        let port = portName(N.end + 1, pe)
        let pub = portName(pe + 1, ue)
        let kind = inport ? "inport" : "outport"
        if let old = inport ? inports[pub] : outports[pub] {
            warn(lineStart, "exported \(kind) \"\(pub)\" is defined again: \(old.process).\(old.port) is replaced by \(process).\(port) (the last definition wins)")
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
        guard ks < n && classAnnKey[Int(b[ks])] else {
            g.fail(ks, .annKey)
            return nil
        }
        let ke = g.scan(ks + 1, classAnnKey, .annKey)
        let vs = g.spaces1(ke)
        guard vs >= 0 else { return nil }
        guard vs < n && classAnnValue[Int(b[vs])] else {
            g.fail(vs, .annValue)
            return nil
        }
        let ve = g.scan(vs + 1, classAnnValue, .annValue)
        return (ks, ke, vs, ve)
    }

    mutating func registerAnnotation(_ key: String, _ value: String, at: Int) {
        var props = properties ?? JSONObject()
        if key == "runtime" {
            if let old = props["environment"]?["type"]?.stringValue, old != value {
                warn(at, "annotation @runtime given again: \"\(old)\" is replaced by \"\(value)\" (the last one wins)")
            }
            props["environment"] = .object(JSONObject([("type", .string(value))]))
        } else {
            if let old = props[key], old != .string(value) {
                warn(at, "annotation @\(key) given again: \"\(old.javaScriptString)\" is replaced by \"\(value)\" (the last one wins)")
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
        warn(hash, "\"\(excerpt(hash, end))\" is read as a comment, not as annotation @\(key): \(reason)")
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

    /// Registers the node's declaration (if any) and returns its process name and name id.
    mutating func resolve(_ N: NodeOcc) -> (String, Int32) {
        let id: Int32
        if N.kind == .anonymous {
            let stem = anonymousStem(N.compStart, N.compEnd)
            let count = (anonCounters[stem] ?? 0) + 1
            anonCounters[stem] = count
            id = nodeNames.intern("_" + stem + "_" + String(count))
        } else {
            id = nodeNames.intern(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: b[N.start..<N.nameEnd])))
        }
        if Int(id) == procOfName.count { procOfName.append(-1) }
        let name = nodeNames.names[Int(id)]
        if N.kind != .ref { declare(name, id, N) }
        return (name, id)
    }

    mutating func declare(_ name: String, _ id: Int32, _ N: NodeOcc) {
        var i = Int(procOfName[Int(id)])
        if i < 0 {
            i = procs.count
            procOfName[Int(id)] = Int32(i)
            procNames.append(name)
            procs.append(Process())
            procPos.append(N.start)
        }
        if N.compEnd > N.compStart {
            let comp = str(N.compStart, N.compEnd)
            if let old = procs[i].component, old != comp {
                warn(N.start, "node \"\(name)\" was declared with component \"\(old)\"; this declaration replaces it with \"\(comp)\" (the last one wins)")
            }
            procs[i].component = comp
        }
        if N.metaStart >= 0 {
            let meta = metadata(N.metaStart, N.metaEnd)
            if let old = procs[i].metadata, old != meta {
                warn(N.metaStart, "node \"\(name)\": this metadata replaces the metadata declared before (\(JSONWriter.string(.object(old), indent: 0)))")
            }
            procs[i].metadata = meta
        }
    }

    /// `(Comp:k=v,k2=v2)` metadata (fbp-dsl.md §4.2).
    mutating func metadata(_ s: Int, _ e: Int) -> JSONObject {
        var o = JSONObject()
        var itemStart = s
        while itemStart <= e {
            var itemEnd = itemStart
            while itemEnd < e && b[itemEnd] != UInt8(ascii: ",") { itemEnd += 1 }
            // split the item on "="
            var parts: [(Int, Int)] = []
            var ps = itemStart
            for k in itemStart...itemEnd where k == itemEnd || b[k] == UInt8(ascii: "=") {
                parts.append((ps, k))
                ps = k + 1
            }
            let key: String
            let value: String
            if parts.count == 1 {
                key = "routes"
                value = str(parts[0].0, parts[0].1)
            } else {
                key = str(parts[0].0, parts[0].1)
                value = str(parts[1].0, parts[1].1)
                if parts.count > 2 {
                    warn(itemStart, "metadata \"\(str(itemStart, itemEnd))\": the text after the second \"=\" is ignored")
                }
            }
            if o.contains(key) {
                warn(itemStart, "metadata key \"\(key)\" is given twice in one declaration; the last value wins")
            }
            if key == "x" || key == "y" {
                let (d, used) = FBPReader.parseFloat(value)
                if d.isNaN || d.isInfinite {
                    warn(itemStart, "metadata \(key)=\"\(value)\" is not a finite number; it becomes null in the JSON graph")
                } else if used != value.utf8.count {
                    warn(itemStart, "metadata \(key)=\"\(value)\": only the number at the start is used (\(JSONWriter.numberText(d, json: true)))")
                }
                o[key] = .number(d)
            } else {
                o[key] = .string(value)
            }
            itemStart = itemEnd + 1
        }
        return o
    }

    /// JavaScript `parseFloat` for metadata text (which has no signs, dots or spaces): the number
    /// and how many characters it used.
    static func parseFloat(_ s: String) -> (Double, Int) {
        if s.hasPrefix("Infinity") { return (.infinity, 8) }
        let u = Array(s.utf8)
        var i = 0
        while i < u.count && u[i] >= 48 && u[i] <= 57 { i += 1 }
        if i == 0 { return (.nan, 0) }
        if i + 1 < u.count && (u[i] == UInt8(ascii: "e") || u[i] == UInt8(ascii: "E")) && u[i + 1] >= 48 && u[i + 1] <= 57 {
            var j = i + 1
            while j < u.count && u[j] >= 48 && u[j] <= 57 { j += 1 }
            i = j
        }
        return (Double(String(decoding: u[0..<i], as: UTF8.self)) ?? .nan, i)
    }

    // MARK: connections

    /// Builds the edges of one `connection` statement (fbp-dsl.md §6.2) and warns about what the
    /// reference drops.
    mutating func commitConnection(_ elems: [Element]) {
        if elems.count == 1 {
            guard case .inport(let P, let N, _) = elems[0] else { return }
            let (name, _) = resolve(N)
            if let P {
                let port = str(P.start, P.end)
                if N.kind == .ref {
                    warn(P.start, "\"\(port) \(name)\" does nothing: a port and node without \"->\" make no connection")
                } else {
                    warn(P.start, "port \"\(port)\" is ignored: a statement without \"->\" only declares a node")
                }
            } else if N.kind == .ref {
                if juxtaposed {
                    warn(N.start, "\"\(name)\" is ignored: text after a statement on the same line is read as a separate statement")
                } else {
                    warn(N.start, "\"\(name)\" alone does nothing: a node name without a component or \"->\"")
                }
            }
            return
        }
        // The reference flattens all half-edges and pairs a src/data with the tgt right after it
        // (skipping past both). Streaming: `pending` is the previous unpaired src/data.
        var pending: (PortRef?, JSONValue?, Int, Int32)? = nil
        func source(_ ref: PortRef?, _ data: JSONValue?, _ pos: Int, _ id: Int32) {
            pending = (ref, data, pos, id)
        }
        func target(_ ref: PortRef, _ pos: Int, _ id: Int32) {
            if let (s, d, sp, sid) = pending {
                connections.append(Connection(src: s, data: d, tgt: ref))
                connSrcPos.append(sp)
                connTgtPos.append(pos)
                connSrcId.append(sid)
                connTgtId.append(id)
            }
            pending = nil
        }
        for i in elems.indices {
            let e = elems[i]
            switch e {
            case .bridge(let inP, let N, let outP, _):
                let (name, id) = resolve(N)
                if i == 0 {
                    if let inP {
                        let port = str(inP.start, inP.end)
                        var hint = ""
                        if N.kind == .anonymous && inP.index == nil {
                            hint = " (did you mean \"\(port)\(str(N.start, N.compEnd + 1))\"? A space before \"(\" makes \"\(port)\" a port)"
                        }
                        warn(inP.start, "in-port \"\(port)\" before the first node of a connection is ignored\(hint)")
                    }
                } else {
                    target(portRef(name, inP, defaultPort: true), N.start, id)
                }
                source(portRef(name, outP, defaultPort: false), nil, N.start, id)
            case .outport(let N, let P):
                let (name, id) = resolve(N)
                if i > 0 {
                    let text = excerpt(N.start, P?.end ?? N.end)
                    warn(N.start, "the connection into \"\(text)\" is dropped: in the middle of a connection a node needs an in-port and an out-port, like \"IN \(name) OUT\" (or a component, like \"\(name)()\")")
                }
                source(portRef(name, P, defaultPort: false), nil, N.start, id)
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
                source(nil, data, s, -1)
            case .inport(let P, let N, _):
                let (name, id) = resolve(N)
                target(portRef(name, P, defaultPort: true), N.start, id)
            }
        }
    }

    // MARK: validation (fbp-dsl.md §9.2)

    func validate(_ graph: Graph) throws {
        func fail(_ at: Int, _ message: String) -> FBPError {
            let idx = LineIndex(b)
            return FBPError(kind: .validation, message: message, location: idx.location(at),
                            sourceLine: idx.lineText(containing: at), expected: [], found: nil)
        }
        for (i, p) in procs.enumerated() where p.component == nil || p.component!.isEmpty {
            throw fail(procPos[i], "Node \"\(procNames[i])\" does not have a component defined")
        }
        func undefined(_ id: Int32?) -> Bool { id.map { procOfName[Int($0)] < 0 } ?? true }
        for (pub, e) in inports where undefined(exportIds["i:" + pub]) {
            throw fail(inportPos[pub] ?? 0, "Inport \"\(pub)\" is connected to an undefined target node \"\(e.process)\"")
        }
        for (pub, e) in outports where undefined(exportIds["o:" + pub]) {
            throw fail(outportPos[pub] ?? 0, "Outport \"\(pub)\" is connected to an undefined source node \"\(e.process)\"")
        }
        for (i, c) in connections.enumerated() {
            if procOfName[Int(connTgtId[i])] < 0 {
                if let d = c.data {
                    throw fail(connTgtPos[i], "IIP containing \"\(d.javaScriptString)\" is connected to an undefined target node \"\(c.tgt.process)\"")
                }
                throw fail(connTgtPos[i], "Edge from \"\(c.src?.process ?? "")\" port \"\(c.src?.port ?? "")\" is connected to an undefined target node \"\(c.tgt.process)\"")
            }
            if let s = c.src, procOfName[Int(connSrcId[i])] < 0 {
                throw fail(connSrcPos[i], "Edge to \"\(c.tgt.process)\" port \"\(c.tgt.port)\" is connected to an undefined source node \"\(s.process)\"")
            }
        }
    }
}

