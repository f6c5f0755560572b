// Graphviz output: `msgflo-graph g.fbp --dot | dot -Tsvg > g.svg`.
import MsgFlo

extension Graph {
    /// The graph in the DOT language: processes as boxes labelled with name and component, port
    /// names on the edges, IIPs as notes, exported ports as marked nodes at the edges of the graph.
    public func dot(name: String = "graph") -> String {
        func q(_ s: String) -> String {
            var r = "\""
            for ch in s.unicodeScalars {
                switch ch {
                case "\"": r += "\\\""
                case "\\": r += "\\\\"
                case "\n": r += "\\n"
                case "\r": r += "\\r"
                default: r.unicodeScalars.append(ch)
                }
            }
            return r + "\""
        }
        func port(_ p: PortRef) -> String { p.index.map { "\(p.port)[\($0)]" } ?? p.port }
        var lines: [String] = []
        lines.append("digraph \(q(name)) {")
        lines.append("  rankdir=LR;")
        lines.append("  node [shape=box, style=rounded, fontname=\"Helvetica\"];")
        lines.append("  edge [fontname=\"Helvetica\", fontsize=10];")
        var known = Set<ScalarKey>()  // process ids, compared as everywhere in a graph
        for (id, p) in processes {
            known.insert(ScalarKey(id))
            var label = id + "\n(" + (p.component ?? "no component") + ")"
            if let md = p.metadata, !md.isEmpty { label += "\n" + JSONWriter.string(.object(md), indent: 0) }
            lines.append("  \(q("p:" + id)) [label=\(q(label))\(p.component == nil ? ", color=red" : "")];")
        }
        func ref(_ id: String) -> String {
            if !known.contains(ScalarKey(id)) {
                known.insert(ScalarKey(id))
                lines.append("  \(q("p:" + id)) [label=\(q(id + "\n(undefined)")), color=red, style=dashed];")
            }
            return q("p:" + id)
        }
        for (i, c) in connections.enumerated() {
            let tgt = ref(c.tgt.process)
            if let s = c.src {
                let src = ref(s.process)
                lines.append("  \(src) -> \(tgt) [taillabel=\(q(port(s))), headlabel=\(q(port(c.tgt))), label=\(q(" "))];")
            } else if let d = c.data {
                var text = d.stringValue.map { "'" + $0 + "'" } ?? JSONWriter.string(d, indent: 0)
                if text.count > 40 { text = String(text.prefix(39)) + "…" }
                let iip = q("iip:\(i)")
                lines.append("  \(iip) [shape=note, style=filled, fillcolor=lightyellow, label=\(q(text))];")
                lines.append("  \(iip) -> \(tgt) [headlabel=\(q(port(c.tgt))), style=dashed];")
            }
        }
        for (pub, e) in inports {
            let node = q("in:" + pub)
            lines.append("  \(node) [shape=cds, style=filled, fillcolor=lightblue, label=\(q("INPORT " + pub))];")
            lines.append("  \(node) -> \(ref(e.process)) [headlabel=\(q(e.port)), style=bold];")
        }
        for (pub, e) in outports {
            let node = q("out:" + pub)
            lines.append("  \(node) [shape=cds, style=filled, fillcolor=lightpink, label=\(q("OUTPORT " + pub))];")
            lines.append("  \(ref(e.process)) -> \(node) [taillabel=\(q(e.port)), style=bold];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}
