import MsgFlo

/// A map that keeps keys in insertion order. Assigning an existing key replaces the value in place.
/// Keys are compared by their Unicode scalars, as JavaScript compares them (see `ScalarKey`).

public struct OrderedMap<Value: Sendable>: Sendable, Sequence {
    public internal(set) var keys: [String] = []
    public internal(set) var values: [Value] = []
    var index: [ScalarKey: Int] = [:]

    public init() {}

    init(keys: [String], values: [Value], index: [ScalarKey: Int]) {
        self.keys = keys
        self.values = values
        self.index = index
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public subscript(key: String) -> Value? {
        get { index[ScalarKey(key)].map { values[$0] } }
        set {
            if let i = index[ScalarKey(key)] {
                if let newValue {
                    values[i] = newValue
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    index = [:]
                    for (j, k) in keys.enumerated() { index[ScalarKey(k)] = j }
                }
            } else if let newValue {
                index[ScalarKey(key)] = keys.count
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    public func position(of key: String) -> Int? { index[ScalarKey(key)] }

    mutating func reserveCapacity(_ n: Int) {
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
        index.reserveCapacity(n)
    }

    public func makeIterator() -> Zip2Sequence<[String], [Value]>.Iterator {
        zip(keys, values).makeIterator()
    }
}

/// One end of a connection.
public struct PortRef: Sendable, Equatable {
    public var process: String
    public var port: String
    public var index: Int?
    public init(process: String, port: String, index: Int? = nil) {
        self.process = process
        self.port = port
        self.index = index
    }
}

/// A process (node) of the graph.
public struct Process: Sendable, Equatable {
    public var component: String?
    public var metadata: JSONObject?
    public init(component: String? = nil, metadata: JSONObject? = nil) {
        self.component = component
        self.metadata = metadata
    }
}

/// An edge between two ports, or an IIP (`data`) sent to a port.
public struct Connection: Sendable, Equatable {
    public var src: PortRef?
    public var data: JSONValue?
    public var tgt: PortRef
    public var metadata: JSONObject?
    public init(src: PortRef? = nil, data: JSONValue? = nil, tgt: PortRef, metadata: JSONObject? = nil) {
        self.src = src
        self.data = data
        self.tgt = tgt
        self.metadata = metadata
    }
}

/// A port of the graph itself, mapped to a port of one of its processes.
public struct ExportedPort: Sendable, Equatable {
    public var process: String
    public var port: String
    public var metadata: JSONObject?
    public init(process: String, port: String, metadata: JSONObject? = nil) {
        self.process = process
        self.port = port
        self.metadata = metadata
    }
}

/// The JSON graph of the FBP ecosystem (fbp-dsl.md §10).
public struct Graph: Sendable {
    public var inports = OrderedMap<ExportedPort>()
    public var outports = OrderedMap<ExportedPort>()
    /// Groups are kept as written in JSON; the `.fbp` language has no syntax for them.
    public var groups: [JSONValue] = []
    public var processes = OrderedMap<Process>()
    public var connections: [Connection] = []
    /// Present only if the source had annotations (or the JSON had `properties`).
    public var properties: JSONObject? = nil
    public var caseSensitive = false

    public init() {}
}

extension OrderedMap: Equatable where Value: Equatable {
    /// Order-insensitive, like comparing JSON objects.
    public static func == (a: OrderedMap, b: OrderedMap) -> Bool {
        guard a.count == b.count else { return false }
        for (k, v) in a {
            guard let w = b[k], w == v else { return false }
        }
        return true
    }
}

extension Graph: Equatable {
    /// Equal as JSON values (key order does not matter; connection order does).
    public static func == (a: Graph, b: Graph) -> Bool {
        a.inports == b.inports && a.outports == b.outports && a.groups == b.groups && a.processes == b.processes
            && a.connections == b.connections && a.properties == b.properties && a.caseSensitive == b.caseSensitive
    }
}

// MARK: - To and from JSON

extension PortRef {
    var json: JSONValue {
        var o = JSONObject()
        o["process"] = .string(process)
        o["port"] = .string(port)
        if let index { o["index"] = .number(Double(index)) }
        return .object(o)
    }
}

extension Graph {
    /// The graph as a JSON value, keys in the reference parser's order.
    public var json: JSONValue {
        func exports(_ m: OrderedMap<ExportedPort>) -> JSONValue {
            var o = JSONObject()
            for (k, e) in m {
                var p = JSONObject()
                p["process"] = .string(e.process)
                p["port"] = .string(e.port)
                if let md = e.metadata { p["metadata"] = .object(md) }
                o[k] = .object(p)
            }
            return .object(o)
        }
        var root = JSONObject()
        root["inports"] = exports(inports)
        root["outports"] = exports(outports)
        root["groups"] = .array(groups)
        var procs = JSONObject()
        for (k, p) in processes {
            var o = JSONObject()
            if let c = p.component { o["component"] = .string(c) }
            if let m = p.metadata { o["metadata"] = .object(m) }
            procs[k] = .object(o)
        }
        root["processes"] = .object(procs)
        root["connections"] = .array(connections.map { c in
            var o = JSONObject()
            if let s = c.src { o["src"] = s.json }
            if let d = c.data { o["data"] = d }
            o["tgt"] = c.tgt.json
            if let m = c.metadata { o["metadata"] = .object(m) }
            return .object(o)
        })
        if let properties { root["properties"] = .object(properties) }
        root["caseSensitive"] = .bool(caseSensitive)
        return .object(root)
    }

    /// `JSON.stringify(graph, null, 2)`, as the reference CLI prints it (no final newline).
    public func jsonText(indent: Int = 2) -> String {
        String(decoding: jsonBytes(indent: indent), as: UTF8.self)
    }

    /// The JSON text as UTF-8 bytes. Written directly, without building a JSON value tree, because
    /// the big graphs are mostly processes and connections.
    public func jsonBytes(indent: Int = 2) -> [UInt8] {
        var bytes: [UInt8] = []
        writeJSON(indent: indent) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Writes the JSON text of `jsonBytes(indent:)`, followed by a line break if `newline`, in
    /// chunks to `output` (each buffer is valid only during its call).
    public func writeJSON(indent: Int = 2, newline: Bool = false, to output: (UnsafeBufferPointer<UInt8>) -> Void) {
        writeGraphJSON(GraphView(graph: self), indent: indent, newline: newline, to: output)
    }

    /// Reads a JSON graph text.
    public init(jsonText: String) throws {
        let v: JSONValue
        do { v = try JSONValue.parse(jsonText) } catch let e as FBPError { throw e }
        try self.init(json: v)
    }

    /// Reads a JSON graph. Missing sections are empty; wrong types are errors naming the field.
    public init(json: JSONValue) throws {
        func bad(_ what: String) -> FBPError {
            FBPError(kind: .graph, message: "not a graph: \(what)", location: nil, sourceLine: nil, expected: [], found: nil)
        }
        guard case .object(let root) = json else { throw bad("the JSON text is not an object") }
        func str(_ v: JSONValue?, _ path: String) throws -> String {
            guard let s = v?.stringValue else { throw bad("\(path) must be a string") }
            return s
        }
        func obj(_ v: JSONValue?, _ path: String) throws -> JSONObject? {
            guard let v, !v.isNull else { return nil }
            guard let o = v.objectValue else { throw bad("\(path) must be an object") }
            return o
        }
        func portRef(_ v: JSONValue?, _ path: String) throws -> PortRef {
            guard let o = try obj(v, path) else { throw bad("\(path) is missing") }
            var index: Int? = nil
            if let iv = o["index"], !iv.isNull {
                guard let d = iv.numberValue, d == d.rounded(), abs(d) <= Double(FBP.maxPortIndex) else { throw bad("\(path).index must be an integer") }
                index = Int(d)
            }
            return PortRef(process: try str(o["process"], "\(path).process"), port: try str(o["port"], "\(path).port"), index: index)
        }
        func exports(_ key: String) throws -> OrderedMap<ExportedPort> {
            var m = OrderedMap<ExportedPort>()
            guard let o = try obj(root[key], key) else { return m }
            for (name, v) in o {
                let path = "\(key).\(name)"
                guard let e = try obj(v, path) else { throw bad("\(path) must be an object") }
                m[name] = ExportedPort(process: try str(e["process"], "\(path).process"), port: try str(e["port"], "\(path).port"),
                                       metadata: try obj(e["metadata"], "\(path).metadata"))
            }
            return m
        }
        inports = try exports("inports")
        outports = try exports("outports")
        if let g = root["groups"], !g.isNull {
            guard let a = g.arrayValue else { throw bad("groups must be an array") }
            groups = a
        }
        if let po = try obj(root["processes"], "processes") {
            processes.reserveCapacity(po.count)
            for (name, v) in po {
                guard let p = try obj(v, "processes.\(name)") else { throw bad("processes.\(name) must be an object") }
                var comp: String? = nil
                if let c = p["component"], !c.isNull { comp = try str(c, "processes.\(name).component") }
                processes[name] = Process(component: comp, metadata: try obj(p["metadata"], "processes.\(name).metadata"))
            }
        }
        if let cv = root["connections"], !cv.isNull {
            guard let ca = cv.arrayValue else { throw bad("connections must be an array") }
            connections.reserveCapacity(ca.count)
            for (i, c) in ca.enumerated() {
                let path = "connections[\(i)]"
                guard let co = try obj(c, path) else { throw bad("\(path) must be an object") }
                var src: PortRef? = nil
                if let s = co["src"], !s.isNull { src = try portRef(s, "\(path).src") }
                let data = co["data"]
                if src == nil && data == nil { throw bad("\(path) has neither src nor data") }
                connections.append(Connection(src: src, data: data, tgt: try portRef(co["tgt"], "\(path).tgt"),
                                              metadata: try obj(co["metadata"], "\(path).metadata")))
            }
        }
        properties = try obj(root["properties"], "properties")
        if let cs = root["caseSensitive"], !cs.isNull {
            guard let b = cs.boolValue else { throw bad("caseSensitive must be true or false") }
            caseSensitive = b
        }
    }
}

/// A string the JSON writer writes as a JSON string literal.
protocol JSONStringWritable {
    func writeJSON(to sink: inout ByteSink)
}

extension String: JSONStringWritable {
    @inline(__always) func writeJSON(to sink: inout ByteSink) { sink.jsonString(self) }
}

/// One end of a connection, as the JSON writer sees it.
struct PortView<Str: JSONStringWritable> {
    var process: Str
    var port: Str
    var index: Int?
}

/// What the JSON writer needs of a graph, so that the one layout serves `Graph` and the parser's
/// interned records (which `FBP.writeJSON` writes without building a `Graph`).
protocol GraphJSONView {
    associatedtype Str: JSONStringWritable
    var inports: OrderedMap<ExportedPort> { get }
    var outports: OrderedMap<ExportedPort> { get }
    var groups: [JSONValue] { get }
    var properties: JSONObject? { get }
    var caseSensitive: Bool { get }
    var processCount: Int { get }
    func processName(_ i: Int) -> Str
    func component(_ i: Int) -> Str?
    func metadata(_ i: Int) -> JSONObject?
    var connectionCount: Int { get }
    func src(_ i: Int) -> PortView<Str>?
    func data(_ i: Int) -> JSONValue?
    func tgt(_ i: Int) -> PortView<Str>
    func connectionMetadata(_ i: Int) -> JSONObject?
}

struct GraphView: GraphJSONView {
    let graph: Graph
    var inports: OrderedMap<ExportedPort> { graph.inports }
    var outports: OrderedMap<ExportedPort> { graph.outports }
    var groups: [JSONValue] { graph.groups }
    var properties: JSONObject? { graph.properties }
    var caseSensitive: Bool { graph.caseSensitive }
    var processCount: Int { graph.processes.count }
    func processName(_ i: Int) -> String { graph.processes.keys[i] }
    func component(_ i: Int) -> String? { graph.processes.values[i].component }
    func metadata(_ i: Int) -> JSONObject? { graph.processes.values[i].metadata }
    var connectionCount: Int { graph.connections.count }
    func src(_ i: Int) -> PortView<String>? {
        graph.connections[i].src.map { PortView(process: $0.process, port: $0.port, index: $0.index) }
    }
    func data(_ i: Int) -> JSONValue? { graph.connections[i].data }
    func tgt(_ i: Int) -> PortView<String> {
        let t = graph.connections[i].tgt
        return PortView(process: t.process, port: t.port, index: t.index)
    }
    func connectionMetadata(_ i: Int) -> JSONObject? { graph.connections[i].metadata }
}

/// Writes a graph's JSON text in chunks to `output`.
func writeGraphJSON<V: GraphJSONView>(_ view: V, indent: Int, newline: Bool, to output: (UnsafeBufferPointer<UInt8>) -> Void) {
    withoutActuallyEscaping(output) { output in
        var w = GraphJSONWriter(indent: indent, sink: ByteSink(capacity: 1 << 18, output: output))
        w.write(view)
        if newline { w.sink.byte(10) }
        w.sink.flush()
    }
}

/// Writes a graph as `JSON.stringify(graph, null, indent)` would, keys in the reference's order.
struct GraphJSONWriter: ~Copyable {
    var sink: ByteSink
    let indent: Int

    /// A piece of constant text in `pieces`.
    struct Piece {
        var start: Int
        var count: Int
    }
    /// The constant text between the names of a process or a connection, written with the same
    /// `key`/`newline` steps as everything else, so a connection is a few copies.
    private var pieces: ByteSink
    private let connSrc: Piece  // connection with src: `\n    {\n      "src": {\n        "process": `
    private let connOpen: Piece  // connection without src: `\n    {`
    private let port: Piece  // `,\n        "port": `
    private let index: Piece  // `,\n        "index": `
    private let refClose: Piece  // `\n      }`
    private let tgtFirst: Piece  // `\n      "tgt": {\n        "process": `
    private let tgtNext: Piece  // `,` + tgtFirst
    private let connClose: Piece  // `\n    }`
    private let procOpen: Piece  // `\n    ` (then the name)
    private let procComp: Piece  // `: {\n      "component": `
    private let procClose: Piece  // `\n    }`

    init(indent: Int, sink: consuming ByteSink) {
        self.sink = sink
        self.indent = indent
        var p = ByteSink(capacity: 1024)
        var s = 0
        func piece(_ p: borrowing ByteSink, _ s: inout Int) -> Piece {
            defer { s = p.count }
            return Piece(start: s, count: p.count - s)
        }
        GraphJSONWriter.newline(&p, indent, 2)
        p.byte(UInt8(ascii: "{"))
        GraphJSONWriter.key(&p, indent, "\"src\"", 3, first: true)
        p.byte(UInt8(ascii: "{"))
        GraphJSONWriter.key(&p, indent, "\"process\"", 4, first: true)
        connSrc = piece(p, &s)
        GraphJSONWriter.newline(&p, indent, 2)
        p.byte(UInt8(ascii: "{"))
        connOpen = piece(p, &s)
        GraphJSONWriter.key(&p, indent, "\"port\"", 4, first: false)
        port = piece(p, &s)
        GraphJSONWriter.key(&p, indent, "\"index\"", 4, first: false)
        index = piece(p, &s)
        GraphJSONWriter.newline(&p, indent, 3)
        p.byte(UInt8(ascii: "}"))
        refClose = piece(p, &s)
        GraphJSONWriter.key(&p, indent, "\"tgt\"", 3, first: true)
        p.byte(UInt8(ascii: "{"))
        GraphJSONWriter.key(&p, indent, "\"process\"", 4, first: true)
        tgtFirst = piece(p, &s)
        p.byte(UInt8(ascii: ","))
        GraphJSONWriter.key(&p, indent, "\"tgt\"", 3, first: true)
        p.byte(UInt8(ascii: "{"))
        GraphJSONWriter.key(&p, indent, "\"process\"", 4, first: true)
        tgtNext = piece(p, &s)
        GraphJSONWriter.newline(&p, indent, 2)
        p.byte(UInt8(ascii: "}"))
        connClose = piece(p, &s)
        GraphJSONWriter.newline(&p, indent, 2)
        procOpen = piece(p, &s)
        GraphJSONWriter.separator(&p, indent)
        p.byte(UInt8(ascii: "{"))
        GraphJSONWriter.key(&p, indent, "\"component\"", 3, first: true)
        procComp = piece(p, &s)
        GraphJSONWriter.newline(&p, indent, 2)
        p.byte(UInt8(ascii: "}"))
        procClose = piece(p, &s)
        pieces = p
    }

    @inline(__always) static func newline(_ sink: inout ByteSink, _ indent: Int, _ depth: Int) {
        if indent > 0 { sink.newline(spaces: depth &* indent) }
    }

    /// `: ` (or `:` without indentation).
    @inline(__always) static func separator(_ sink: inout ByteSink, _ indent: Int) {
        if indent > 0 { sink.append(": ") } else { sink.byte(UInt8(ascii: ":")) }
    }

    /// `,` unless first, a line break, the quoted key and `: `.
    @inline(__always) static func key(_ sink: inout ByteSink, _ indent: Int, _ k: StaticString, _ depth: Int, first: Bool) {
        if !first { sink.byte(UInt8(ascii: ",")) }
        newline(&sink, indent, depth)
        sink.append(k)
        separator(&sink, indent)
    }

    @inline(__always) mutating func newline(_ depth: Int) {
        GraphJSONWriter.newline(&sink, indent, depth)
    }

    @inline(__always) mutating func key(_ k: StaticString, _ depth: Int, first: Bool) {
        GraphJSONWriter.key(&sink, indent, k, depth, first: first)
    }

    mutating func dynKey(_ k: String, _ depth: Int, first: Bool) {
        if !first { sink.byte(UInt8(ascii: ",")) }
        newline(depth)
        JSONWriter.writeKey(k, indent, &sink)
    }

    @inline(__always) mutating func close(_ c: UInt8, _ depth: Int) {
        newline(depth)
        sink.byte(c)
    }

    @inline(__always) mutating func put(_ p: Piece) {
        sink.reserve(p.count)
        sink.putSmall(pieces.base + p.start, p.count)
    }

    mutating func value(_ v: JSONValue, _ depth: Int) {
        JSONWriter.write(v, depth: depth, indent: indent, into: &sink)
    }

    /// The rest of a connection end after its `"process": `.
    @inline(__always) mutating func portRefRest<Str>(_ p: PortView<Str>) {
        p.process.writeJSON(to: &sink)
        put(port)
        p.port.writeJSON(to: &sink)
        if let i = p.index {
            put(index)
            sink.integer(Int64(i))
        }
        put(refClose)
    }

    mutating func exports(_ m: OrderedMap<ExportedPort>) {
        if m.isEmpty { sink.append("{}"); return }
        sink.byte(UInt8(ascii: "{"))
        for i in 0..<m.count {
            let e = m.values[i]
            dynKey(m.keys[i], 2, first: i == 0)
            sink.byte(UInt8(ascii: "{"))
            key("\"process\"", 3, first: true)
            sink.jsonString(e.process)
            key("\"port\"", 3, first: false)
            sink.jsonString(e.port)
            if let md = e.metadata {
                key("\"metadata\"", 3, first: false)
                value(.object(md), 3)
            }
            close(UInt8(ascii: "}"), 2)
        }
        close(UInt8(ascii: "}"), 1)
    }

    mutating func write<V: GraphJSONView>(_ g: V) {
        sink.byte(UInt8(ascii: "{"))
        key("\"inports\"", 1, first: true)
        exports(g.inports)
        key("\"outports\"", 1, first: false)
        exports(g.outports)
        key("\"groups\"", 1, first: false)
        value(.array(g.groups), 1)
        key("\"processes\"", 1, first: false)
        let processCount = g.processCount
        if processCount == 0 { sink.append("{}") } else {
            sink.byte(UInt8(ascii: "{"))
            for i in 0..<processCount {
                if i > 0 { sink.byte(UInt8(ascii: ",")) }
                put(procOpen)
                g.processName(i).writeJSON(to: &sink)
                let c = g.component(i)
                let m = g.metadata(i)
                if let c {
                    put(procComp)
                    c.writeJSON(to: &sink)
                } else {
                    GraphJSONWriter.separator(&sink, indent)
                    if m == nil { sink.append("{}"); continue }
                    sink.byte(UInt8(ascii: "{"))
                }
                if let m {
                    key("\"metadata\"", 3, first: c == nil)
                    value(.object(m), 3)
                }
                put(procClose)
            }
            close(UInt8(ascii: "}"), 1)
        }
        key("\"connections\"", 1, first: false)
        let connectionCount = g.connectionCount
        if connectionCount == 0 { sink.append("[]") } else {
            sink.byte(UInt8(ascii: "["))
            for i in 0..<connectionCount {
                if i > 0 { sink.byte(UInt8(ascii: ",")) }
                var first = true
                if let s = g.src(i) {
                    put(connSrc)
                    portRefRest(s)
                    first = false
                } else {
                    put(connOpen)
                }
                if let d = g.data(i) {
                    key("\"data\"", 3, first: first)
                    value(d, 3)
                    first = false
                }
                put(first ? tgtFirst : tgtNext)
                portRefRest(g.tgt(i))
                if let m = g.connectionMetadata(i) {
                    key("\"metadata\"", 3, first: false)
                    value(.object(m), 3)
                }
                put(connClose)
            }
            close(UInt8(ascii: "]"), 1)
        }
        if let properties = g.properties {
            key("\"properties\"", 1, first: false)
            value(.object(properties), 1)
        }
        key("\"caseSensitive\"", 1, first: false)
        sink.append(g.caseSensitive ? "true" : "false")
        close(UInt8(ascii: "}"), 0)
    }
}
