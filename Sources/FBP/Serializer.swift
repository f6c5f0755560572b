// Graph → `.fbp` text (fbp-dsl.md §11). Byte-for-byte the reference's output where the reference is
// right; where it would lose or break something (indexes, metadata, a component on every node,
// IIPs with quotes or backslashes, non-string IIPs, unconnected nodes, node names that are not
// valid in `.fbp`) this writes what reads back as the same graph, and warns about anything that
// `.fbp` cannot express at all.
import MsgFlo

/// The result of serializing: the text and what could not be expressed.
public struct SerializeResult: Sendable {
    public var text: String
    public var warnings: [Warning]
}

extension FBP {
    public static func serialize(_ graph: Graph) -> SerializeResult {
        var s = Serializer(graph)
        return s.run()
    }
}

private let classMetaText = table2(["a"..."z", "A"..."Z", "0"..."9", "/"..."/", "_"..."_"])
private func table2(_ r: [ClosedRange<Unicode.Scalar>]) -> [Bool] {
    var t = [Bool](repeating: false, count: 256)
    for range in r { for v in range.lowerBound.value...range.upperBound.value { t[Int(v)] = true } }
    return t
}

func isValidNodeName(_ s: String) -> Bool {
    let u = s.utf8
    guard let f = u.first, classNameStart[Int(f)] else { return false }
    return u.dropFirst().allSatisfy { classNameChar[Int($0)] }
}

func isValidPortName(_ s: String) -> Bool {
    let u = s.utf8
    guard let f = u.first, classNameStart[Int(f)] else { return false }
    return u.dropFirst().allSatisfy { classPortChar[Int($0)] }
}

func isValidComponent(_ s: String) -> Bool {
    s.utf8.allSatisfy { classCompChar[Int($0)] }
}

func isAnnotationValue(_ s: String) -> Bool {
    guard let f = s.utf8.first, f != 32 else { return false }
    return s.utf8.allSatisfy { classAnnValue[Int($0)] }
}

struct Serializer {
    let graph: Graph
    var out: [UInt8] = []
    let warnings = WarningCollector(limit: 100)
    var names: [ScalarKey: String] = [:]  // process id → name written (ids compared as JavaScript does)
    var warnedPorts: Set<String> = []

    init(_ graph: Graph) {
        self.graph = graph
    }

    /// A warning; its message is made only if it will be reported.
    func warn(_ message: @autoclosure () -> String) {
        warnings.add(-1, message())
    }

    mutating func emit(_ s: String) { out.append(contentsOf: s.utf8) }

    mutating func run() -> SerializeResult {
        assignNames()
        writeProperties()
        writeExports(graph.inports, keyword: "INPORT", kind: "inport")
        writeExports(graph.outports, keyword: "OUTPORT", kind: "outport")
        emit("\n")

        // Declarations go where the reference puts components (first appearance in the
        // connections) when that reproduces the order of `processes`; otherwise up front.
        // (Process ids are compared by their Unicode scalars, as everywhere in a graph: see `ScalarKey`.)
        var natural: [String] = []
        var seen = Set<ScalarKey>()
        for c in graph.connections {
            if let s = c.src, graph.processes[s.process] != nil, seen.insert(ScalarKey(s.process)).inserted { natural.append(s.process) }
            if graph.processes[c.tgt.process] != nil, seen.insert(ScalarKey(c.tgt.process)).inserted { natural.append(c.tgt.process) }
        }
        let unconnected = graph.processes.keys.filter { !seen.contains(ScalarKey($0)) }
        natural += unconnected
        var declared = Set<ScalarKey>()
        if !natural.elementsEqual(graph.processes.keys, by: sameScalars) {
            for id in graph.processes.keys {
                emit(nodeText(id, declared: &declared))
                emit("\n")
            }
        }
        for c in graph.connections {
            if let d = c.data {
                emit(iipText(d))
            } else if let s = c.src {
                emit(nodeText(s.process, declared: &declared))
                emit(" ")
                emit(portText(s.port, s.index))
            }
            emit(" -> ")
            emit(portText(c.tgt.port, c.tgt.index))
            emit(" ")
            emit(nodeText(c.tgt.process, declared: &declared))
            emit("\n")
            if c.metadata != nil && !(c.metadata!.isEmpty) {
                warn("the metadata of connection \(describe(c)) cannot be written in .fbp and is left out")
            }
        }
        for id in unconnected where !declared.contains(ScalarKey(id)) {
            emit(nodeText(id, declared: &declared))
            emit("\n")
        }
        if !graph.groups.isEmpty {
            warn("groups cannot be written in .fbp and are left out (\(graph.groups.count) group\(graph.groups.count == 1 ? "" : "s"))")
        }
        return SerializeResult(text: String(decoding: out, as: UTF8.self), warnings: warnings.locationless())
    }

    func describe(_ c: Connection) -> String {
        let to = "\(c.tgt.process).\(c.tgt.port)"
        if let s = c.src { return "\(s.process).\(s.port) -> \(to)" }
        return "IIP -> \(to)"
    }

    // MARK: names

    /// The reference's `getName`: the metadata label if there is metadata, else the id; only the
    /// part after the last "/".
    func referenceName(_ id: String) -> String {
        var name = id
        if let md = graph.processes[id]?.metadata, let label = md["label"]?.stringValue { name = label }
        if let slash = name.lastIndex(of: "/") { name = String(name[name.index(after: slash)...]) }
        return name
    }

    mutating func assignNames() {
        var used = Set<String>()
        var all = graph.processes.keys
        var extra = Set<ScalarKey>()
        func note(_ id: String) {
            if graph.processes[id] == nil && extra.insert(ScalarKey(id)).inserted { all.append(id) }
        }
        for c in graph.connections {
            if let s = c.src { note(s.process) }
            note(c.tgt.process)
        }
        for (_, e) in graph.inports { note(e.process) }
        for (_, e) in graph.outports { note(e.process) }
        for id in all where isValidNodeName(id) {
            names[ScalarKey(id)] = id
            used.insert(id)
        }
        for id in all where names[ScalarKey(id)] == nil {
            var candidates = [referenceName(id)]
            if let slash = id.lastIndex(of: "/") { candidates.append(String(id[id.index(after: slash)...])) }
            var chosen = candidates.first { isValidNodeName($0) && !used.contains($0) }
            if chosen == nil {
                var base = String(id.unicodeScalars.map { s -> Character in
                    s.isASCII && classNameChar[Int(s.value)] ? Character(s) : "_"
                })
                if base.isEmpty || !classNameStart[Int(base.utf8.first!)] { base = "_" + base }
                var candidate = base
                var k = 2
                while used.contains(candidate) {
                    candidate = base + "_" + String(k)
                    k += 1
                }
                chosen = candidate
            }
            names[ScalarKey(id)] = chosen!
            used.insert(chosen!)
            warn("process \"\(id)\" is written as \"\(chosen!)\": its name is not a valid .fbp node name")
        }
    }

    /// The node as written in a statement: with its component (and metadata) the first time.
    mutating func nodeText(_ id: String, declared: inout Set<ScalarKey>) -> String {
        let name = names[ScalarKey(id)] ?? id
        guard let p = graph.processes[id], declared.insert(ScalarKey(id)).inserted else { return name }
        var inner = ""
        if let comp = p.component {
            if !isValidComponent(comp) {
                warn("component \"\(comp)\" of process \"\(id)\" is not valid in .fbp (letters, digits, \"/\", \"-\" and \"_\" only); the output will not parse")
            }
            inner = comp
        } else {
            warn("process \"\(id)\" has no component; the output will not pass validation")
        }
        if let md = p.metadata, let text = metadataText(md, id) { inner += ":" + text }
        if inner.isEmpty { return name }
        return name + "(" + inner + ")"
    }

    /// `k=v,k2=v2` for the metadata that `.fbp` can express; warns about the rest.
    mutating func metadataText(_ md: JSONObject, _ id: String) -> String? {
        var items: [String] = []
        var dropped: [String] = []
        for (k, v) in md {
            // An empty key is writable too: the item `=v` reads back as {"": "v"}.
            let keyOK = k.utf8.allSatisfy { classMetaText[Int($0)] }
            var text: String? = nil
            if keyOK {
                if k == "x" || k == "y" {
                    if let d = v.numberValue {
                        if d.isNaN { text = "" } else if d >= 0 && d == d.rounded() && d < 1e21 { text = JSONWriter.numberText(d, json: true) }
                    }
                } else if case .string(let s) = v, s.utf8.allSatisfy({ classMetaText[Int($0)] }) {
                    text = s
                }
            }
            if let text { items.append(k + "=" + text) } else { dropped.append(k) }
        }
        if !dropped.isEmpty {
            warn("metadata \(dropped.map { "\"\($0)\"" }.joined(separator: ", ")) of process \"\(id)\" cannot be written in .fbp and \(dropped.count == 1 ? "is" : "are") left out")
        }
        return items.isEmpty ? nil : items.joined(separator: ",")
    }

    // MARK: ports and IIPs

    mutating func portText(_ port: String, _ index: Int?) -> String {
        var p = port
        if !graph.caseSensitive {
            if p.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) && warnedPorts.insert(p).inserted {
                warn("port \"\(p)\" of a case-insensitive graph reads back as \"\(p.lowercased())\"")
            }
            p = p.uppercased()
        }
        if !isValidPortName(port) && warnedPorts.insert("!" + port).inserted {
            warn("port \"\(port)\" is not a valid .fbp port name; the output will not parse")
        }
        if let index {
            if index >= 0 { p += "[\(index)]" } else { warn("port index \(index) of port \"\(port)\" cannot be written in .fbp and is left out") }
        }
        return p
    }

    /// The IIP as a JSON text, which reads back as the same value. `true`, `false` and `null`
    /// get a leading tab, because bare they would be read as node names.
    func iipText(_ d: JSONValue) -> String {
        switch d {
        case .bool, .null: return "\t" + JSONWriter.string(d, indent: 0)
        default: return JSONWriter.string(d, indent: 0)
        }
    }

    // MARK: header

    mutating func writeProperties() {
        guard let props = graph.properties else { return }
        if let env = props["environment"] {
            if let type = env["type"], type.isTruthy {
                if case .string(let t) = type, isAnnotationValue(t) {
                    emit("# @runtime \(t)\n")
                } else {
                    warn("the runtime \(JSONWriter.string(type, indent: 0)) cannot be written as an annotation and is left out")
                }
                if let o = env.objectValue, o.count > 1 {
                    warn("environment fields other than \"type\" cannot be written in .fbp and are left out")
                }
            } else {
                warn("the environment has no type and is left out")
            }
        }
        for (k, v) in props where k != "environment" {
            let keyOK = !k.isEmpty && k.utf8.allSatisfy { classAnnKey[Int($0)] } && k != "runtime"
            if keyOK, case .string(let s) = v, isAnnotationValue(s) {
                emit("# @\(k) \(s)\n")
            } else {
                warn("property \"\(k)\" cannot be written as an annotation and is left out")
            }
        }
    }

    mutating func writeExports(_ m: OrderedMap<ExportedPort>, keyword: String, kind: String) {
        for (pub, e) in m {
            let name = names[ScalarKey(e.process)] ?? e.process
            if !isValidPortName(pub) { warn("exported \(kind) name \"\(pub)\" is not a valid .fbp port name; the output will not parse") }
            if !isValidPortName(e.port) { warn("port \"\(e.port)\" of exported \(kind) \"\(pub)\" is not a valid .fbp port name; the output will not parse") }
            var port = e.port, public_ = pub
            if !graph.caseSensitive {
                if pub.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) || port.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) {
                    warn("exported \(kind) \"\(pub)\" of a case-insensitive graph reads back lower-cased")
                }
                port = port.uppercased()
                public_ = pub.uppercased()
            }
            if let md = e.metadata, !md.isEmpty {
                warn("the metadata of exported \(kind) \"\(pub)\" cannot be written in .fbp and is left out")
            }
            emit("\(keyword)=\(name).\(port):\(public_)\n")
        }
    }
}
