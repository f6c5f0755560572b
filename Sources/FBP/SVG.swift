/// A graph drawn as one self-contained SVG document (no fonts, scripts or files from elsewhere), from `GraphLayout`.
///
/// Every name is written as XML text or attribute content with `&`, `<`, `>`, quotes escaped; characters XML cannot
/// carry (control characters, U+FFFE, U+FFFF) are shown as visible escapes by `GraphLayout.displayText`, so a hostile
/// graph gives a valid document. Nodes, ports and edges carry `data-` attributes (process id, port names) for
/// scripts and tests.
extension Graph {
    public func svg(title: String = "graph", options: LayoutOptions = LayoutOptions()) -> String {
        SVGWriter.document(GraphLayout(graph: self, options: options), title: title, options: options)
    }
}

public enum SVGWriter {
    public static func document(_ layout: GraphLayout, title: String, options: LayoutOptions = LayoutOptions()) -> String {
        let w = fmt(max(layout.width, 1)), h = fmt(max(layout.height, 1))
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(w)" height="\(h)" viewBox="0 0 \(w) \(h)" class="msgflo-graph">
        <title>\(xml(GraphLayout.displayText(title, max: 200)))</title>
        <style>
        .msgflo-graph { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
        .node rect.box { fill: #f7f9fc; stroke: #4a6785; stroke-width: 1.5; }
        .node.undeclared rect.box { fill: #fff4f4; stroke: #c0392b; stroke-dasharray: 5 3; }
        .node .title { font-weight: bold; fill: #1d2b3a; }
        .node .component { fill: #5a6b7d; font-size: 11px; }
        .port circle { fill: #fff; stroke: #4a6785; stroke-width: 1.2; }
        .port.exported circle { fill: #2e86de; stroke: #2e86de; }
        .port text { fill: #34495e; font-size: 11px; }
        .port .export { fill: #2e86de; font-size: 11px; }
        .edge { fill: none; stroke: #7f8c9a; stroke-width: 1.6; }
        .edge.backward { stroke-dasharray: 6 4; }
        .iip text { fill: #7d5a00; font-size: 11px; }
        .iip line { stroke: #c9a227; stroke-width: 1.2; }
        </style>
        <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#7f8c9a"/></marker></defs>

        """
        s += "<g class=\"edges\">\n"
        for e in layout.edges {
            let c = e.curve
            s += "<path class=\"edge\(e.backward ? " backward" : "")\" data-src=\"\(attr(e.src))\" data-tgt=\"\(attr(e.tgt))\" "
            s += "d=\"" + pathData(c) + "\" marker-end=\"url(#arrow)\"/>\n"
        }
        s += "</g>\n<g class=\"nodes\">\n"
        for n in layout.nodes {
            s += "<g class=\"node\(n.declared ? "" : " undeclared")\" data-id=\"\(xml(GraphLayout.displayText(n.id, max: 1_000)))\">\n"
            s += "<rect class=\"box\" x=\"\(fmt(n.x))\" y=\"\(fmt(n.y))\" width=\"\(fmt(n.width))\" height=\"\(fmt(n.height))\" rx=\"6\"/>\n"
            s += "<text class=\"title\" x=\"\(fmt(n.x + n.width / 2))\" y=\"\(fmt(n.y + 16))\" text-anchor=\"middle\">\(xml(n.title))</text>\n"
            s += "<text class=\"component\" x=\"\(fmt(n.x + n.width / 2))\" y=\"\(fmt(n.y + 30))\" text-anchor=\"middle\">\(xml(n.subtitle))</text>\n"
            for (ports, left) in [(n.inports, true), (n.outports, false)] {
                for p in ports {
                    let label = xml(GraphLayout.displayText(p.name, max: options.maxLabel))
                    s += "<g class=\"port \(left ? "in" : "out")\(p.exportedAs == nil ? "" : " exported")\" data-port=\"\(label)\">"
                    s += "<circle cx=\"\(fmt(p.anchor.x))\" cy=\"\(fmt(p.anchor.y))\" r=\"4\"/>"
                    s += "<text x=\"\(fmt(p.anchor.x + (left ? 8 : -8)))\" y=\"\(fmt(p.anchor.y + 4))\" text-anchor=\"\(left ? "start" : "end")\">\(label)</text>"
                    if let ex = p.exportedAs {
                        let exLabel = xml(GraphLayout.displayText(ex, max: options.maxLabel))
                        s += "<text class=\"export\" x=\"\(fmt(p.anchor.x + (left ? -8 : 8)))\" y=\"\(fmt(p.anchor.y - 6))\" text-anchor=\"\(left ? "end" : "start")\">\(left ? "\(exLabel) ▸" : "▸ \(exLabel)")</text>"
                    }
                    s += "</g>\n"
                }
            }
            s += "</g>\n"
        }
        s += "</g>\n<g class=\"iips\">\n"
        for i in layout.initials {
            s += "<g class=\"iip\" data-tgt=\"\(attr(i.tgt))\"><line x1=\"\(fmt(i.at.x))\" y1=\"\(fmt(i.at.y))\" x2=\"\(fmt(i.anchor.x - 4))\" y2=\"\(fmt(i.anchor.y))\"/>"
            s += "<text x=\"\(fmt(i.at.x - 4))\" y=\"\(fmt(i.at.y + 4))\" text-anchor=\"end\">\(xml(i.text))</text></g>\n"
        }
        s += "</g>\n</svg>\n"
        return s
    }

    /// SVG path data for `GraphLayout.Edge.curve`: a move, then one cubic piece per three points.
    public static func pathData(_ c: [GraphLayout.Point]) -> String {
        guard let first = c.first else { return "" }
        var d = "M \(fmt(first.x)) \(fmt(first.y))"
        var i = 1
        while i + 2 < c.count {
            d += " C \(fmt(c[i].x)) \(fmt(c[i].y)), \(fmt(c[i + 1].x)) \(fmt(c[i + 1].y)), \(fmt(c[i + 2].x)) \(fmt(c[i + 2].y))"
            i += 3
        }
        return d
    }

    static func attr(_ p: PortRef) -> String {
        xml(GraphLayout.displayText(p.process, max: 1_000) + "." + GraphLayout.displayText(p.port, max: 1_000))
    }

    /// XML text and attribute content: the five special characters escaped. Callers pass display text, which has no
    /// character XML cannot carry.
    static func xml(_ s: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(s.unicodeScalars.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// Coordinates with at most one decimal, no trailing ".0".
    static func fmt(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        if r == r.rounded() { return String(Int(r)) }
        return String(r)
    }
}
