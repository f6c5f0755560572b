import MsgFlo

/// A layered, left-to-right drawing of a graph: where each process, port, edge and IIP goes.
///
/// The method is the classic one for data-flow pictures (Sugiyama's): break cycles, put each process in the layer
/// after the longest chain that feeds it, order each layer to keep edges short (barycenters, a few sweeps), then place
/// layers left to right. Everything is deterministic and ties are broken by the order processes appear in the graph, so
/// a process added to a graph does not reshuffle the others: the same picture for `msgflo-graph --svg` and for the
/// live view, which draws from this same layout.
///
/// Cost: O((V + E) log V) per ordering sweep, a fixed number of sweeps; untrusted names are shortened for display
/// (`LayoutOptions.maxLabel`) before they are measured.

public struct GraphLayout: Sendable {
    public struct Point: Sendable, Equatable {
        public var x: Double
        public var y: Double
        public init(x: Double, y: Double) { self.x = x; self.y = y }
    }

    public struct Port: Sendable, Equatable {
        /// The port's name as the graph has it.
        public var name: String
        /// The point where edges attach (left side for inports, right side for outports).
        public var anchor: Point
        /// The graph's own port name when this port is exported (`INPORT=` / `OUTPORT=`).
        public var exportedAs: String?
    }

    public struct Node: Sendable, Equatable {
        public var id: String
        public var component: String?
        /// False for a process that connections name but the graph never declares.
        public var declared: Bool
        public var layer: Int
        /// The position within the layer, top to bottom.
        public var rank: Int
        public var x: Double
        public var y: Double
        public var width: Double
        public var height: Double
        public var inports: [Port]
        public var outports: [Port]
        /// Display forms of id and component, shortened to `maxLabel` characters.
        public var title: String
        public var subtitle: String
    }

    public struct Edge: Sendable, Equatable {
        public var src: PortRef
        public var tgt: PortRef
        /// Cubic Bézier pieces: the start, then two control points and an end point per piece (3k + 1 points).
        public var curve: [Point]
        /// True when the edge goes against the layering (part of a cycle).
        public var backward: Bool
    }

    public struct InitialPacket: Sendable, Equatable {
        public var tgt: PortRef
        /// The IIP shortened for display.
        public var text: String
        /// The label's right end; a short line joins it to the port's anchor.
        public var at: Point
        public var anchor: Point
    }

    public var nodes: [Node]
    public var edges: [Edge]
    public var initials: [InitialPacket]
    public var width: Double
    public var height: Double

    public func node(_ id: String) -> Node? { nodes.first { $0.id == id } }
}

public struct LayoutOptions: Sendable {
    /// Characters of a name shown before it is cut with "…".
    public var maxLabel = 32
    /// Characters of an IIP shown.
    public var maxIIP = 24
    /// Width of one character of the drawing's font (monospace), in user units.
    public var charWidth = 7.2
    public var nodeMinWidth = 110.0
    public var headerHeight = 38.0
    public var portPitch = 18.0
    public var layerGap = 150.0
    public var rowGap = 36.0
    public var margin = 24.0
    /// Barycenter sweeps to order the layers.
    public var sweeps = 4
    public init() {}
}

extension GraphLayout {
    public init(graph: Graph, options: LayoutOptions = LayoutOptions()) {
        let o = options
        // Processes in order of appearance: declared ones first, then those only connections name.
        var ids: [String] = graph.processes.keys
        var indexOf: [String: Int] = [:]
        for (i, id) in ids.enumerated() { indexOf[id] = i }
        func intern(_ id: String) -> Int {
            if let i = indexOf[id] { return i }
            indexOf[id] = ids.count
            ids.append(id)
            return ids.count - 1
        }
        // Ports in order of appearance per process.
        var inNames: [[String]] = []
        var outNames: [[String]] = []
        func addPort(_ list: inout [[String]], _ p: Int, _ name: String) {
            while list.count <= p { list.append([]) }
            if !list[p].contains(name) { list[p].append(name) }
        }
        var arcs: [(Int, Int)] = []
        for c in graph.connections {
            let t = intern(c.tgt.process)
            addPort(&inNames, t, c.tgt.port)
            if let s = c.src {
                let u = intern(s.process)
                addPort(&outNames, u, s.port)
                if u != t { arcs.append((u, t)) }
            }
        }
        var exportedIn: [String: String] = [:]   // "process\u{0}port" -> exported name
        var exportedOut: [String: String] = [:]
        for (name, e) in graph.inports {
            let p = intern(e.process)
            addPort(&inNames, p, e.port)
            exportedIn[e.process + "\u{0}" + e.port] = name
        }
        for (name, e) in graph.outports {
            let p = intern(e.process)
            addPort(&outNames, p, e.port)
            exportedOut[e.process + "\u{0}" + e.port] = name
        }
        let n = ids.count
        while inNames.count < n { inNames.append([]) }
        while outNames.count < n { outNames.append([]) }

        // 1. Break cycles: a depth-first search in graph order; an arc to a process on the stack goes backward.
        var succ = [[Int]](repeating: [], count: n)
        for (u, v) in arcs where !succ[u].contains(v) { succ[u].append(v) }
        var state = [UInt8](repeating: 0, count: n)   // 0 new, 1 on stack, 2 done
        var backward = Set<Int>()                         // u * n + v
        for root in 0..<n where state[root] == 0 {
            var stack: [(Int, Int)] = [(root, 0)]
            state[root] = 1
            while let top = stack.last {
                let (u, i) = top
                if i < succ[u].count {
                    stack[stack.count - 1].1 = i + 1
                    let v = succ[u][i]
                    if state[v] == 0 { state[v] = 1; stack.append((v, 0)) }
                    else if state[v] == 1 { backward.insert(u * n + v) }
                } else {
                    state[u] = 2
                    stack.removeLast()
                }
            }
        }
        // 2. Layers: longest path from the sources over the forward arcs (Kahn's order).
        var fwdSucc = [[Int]](repeating: [], count: n)
        var fwdPred = [[Int]](repeating: [], count: n)
        var indeg = [Int](repeating: 0, count: n)
        for u in 0..<n {
            for v in succ[u] where !backward.contains(u * n + v) {
                fwdSucc[u].append(v); fwdPred[v].append(u); indeg[v] += 1
            }
        }
        var layer = [Int](repeating: 0, count: n)
        var queue = (0..<n).filter { indeg[$0] == 0 }
        var head = 0
        while head < queue.count {
            let u = queue[head]; head += 1
            for v in fwdSucc[u] {
                layer[v] = max(layer[v], layer[u] + 1)
                indeg[v] -= 1
                if indeg[v] == 0 { queue.append(v) }
            }
        }
        let layerCount = (layer.max() ?? -1) + 1
        var layers = [[Int]](repeating: [], count: layerCount)
        for v in 0..<n { layers[layer[v]].append(v) }   // graph order within a layer

        // 3. Order each layer by the mean position of its neighbours in the layer before (down) or after (up).
        var pos = [Double](repeating: 0, count: n)
        func renumber() { for l in layers { for (i, v) in l.enumerated() { pos[v] = Double(i) } } }
        renumber()
        if layerCount > 1 {
            for sweep in 0..<o.sweeps {
                let down = sweep % 2 == 0
                let order = down ? Array(1..<layerCount) : Array((0..<(layerCount - 1)).reversed())
                for l in order {
                    let keyed = layers[l].map { v -> (Int, Double, Double) in
                        let nb = down ? fwdPred[v] : fwdSucc[v]
                        guard !nb.isEmpty else { return (v, pos[v], pos[v]) }
                        let bary = nb.reduce(0.0) { $0 + pos[$1] } / Double(nb.count)
                        return (v, bary, pos[v])
                    }
                    layers[l] = keyed.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.2 < $1.2 }.map { $0.0 }
                    for (i, v) in layers[l].enumerated() { pos[v] = Double(i) }
                }
            }
        }

        // 4. Sizes, then coordinates: layers left to right, each layer's column centred on the tallest.
        func cut(_ s: String, _ max: Int) -> String { Self.displayText(s, max: max) }
        var width = [Double](repeating: 0, count: n)
        var height = [Double](repeating: 0, count: n)
        var titles = [String](repeating: "", count: n)
        var subtitles = [String](repeating: "", count: n)
        for v in 0..<n {
            let declared = graph.processes[ids[v]] != nil
            titles[v] = cut(ids[v], o.maxLabel)
            subtitles[v] = declared ? cut(graph.processes[ids[v]]?.component ?? "no component", o.maxLabel) : "undefined"
            let portChars = (inNames[v].map { cut($0, o.maxLabel).count }.max() ?? 0)
                + (outNames[v].map { cut($0, o.maxLabel).count }.max() ?? 0)
            let textChars = max(titles[v].count, subtitles[v].count)
            width[v] = max(o.nodeMinWidth, Double(textChars) * o.charWidth + 24, Double(portChars) * o.charWidth + 36)
            height[v] = o.headerHeight + Double(max(inNames[v].count, outNames[v].count, 1)) * o.portPitch + 6
        }
        var columnHeight = [Double](repeating: 0, count: layerCount)
        var columnWidth = [Double](repeating: 0, count: layerCount)
        for (l, members) in layers.enumerated() {
            columnHeight[l] = members.reduce(0) { $0 + height[$1] } + Double(max(members.count - 1, 0)) * o.rowGap
            columnWidth[l] = members.map { width[$0] }.max() ?? 0
        }
        let tallest = columnHeight.max() ?? 0
        // Room at the left for IIP labels and exported inports' names, at the right for exported outports' names.
        var leftRoom = 0.0, rightRoom = 0.0
        for c in graph.connections where c.src == nil {
            let text = c.data.map { $0.stringValue.map { "'" + $0 + "'" } ?? JSONWriter.string($0, indent: 0) } ?? ""
            leftRoom = max(leftRoom, Double(cut(text, o.maxIIP).count) * o.charWidth + 24)
        }
        for (name, _) in graph.inports { leftRoom = max(leftRoom, Double(cut(name, o.maxLabel).count + 2) * o.charWidth + 12) }
        for (name, _) in graph.outports { rightRoom = max(rightRoom, Double(cut(name, o.maxLabel).count + 2) * o.charWidth + 12) }
        var x = o.margin + leftRoom
        var columnX = [Double](repeating: 0, count: layerCount)
        var nodeX = [Double](repeating: 0, count: n)
        var nodeY = [Double](repeating: 0, count: n)
        var rank = [Int](repeating: 0, count: n)
        for (l, members) in layers.enumerated() {
            columnX[l] = x
            var y = o.margin + (tallest - columnHeight[l]) / 2
            for (i, v) in members.enumerated() {
                nodeX[v] = x + (columnWidth[l] - width[v]) / 2
                nodeY[v] = y
                rank[v] = i
                y += height[v] + o.rowGap
            }
            x += columnWidth[l] + o.layerGap
        }
        let totalWidth = layerCount == 0 ? 2 * o.margin : x - o.layerGap + o.margin + rightRoom
        // Room below for the loops of edges that go against the flow.
        let loops = !backward.isEmpty || graph.connections.contains { $0.src?.process == $0.tgt.process }
        let totalHeight = tallest + 2 * o.margin + (loops ? o.rowGap + 24 : 0)

        var nodes: [Node] = []
        nodes.reserveCapacity(n)
        for v in 0..<n {
            func ports(_ names: [String], left: Bool, exported: [String: String]) -> [Port] {
                names.enumerated().map { i, name in
                    Port(name: name,
                         anchor: Point(x: left ? nodeX[v] : nodeX[v] + width[v],
                                       y: nodeY[v] + o.headerHeight + (Double(i) + 0.5) * o.portPitch),
                         exportedAs: exported[ids[v] + "\u{0}" + name])
                }
            }
            nodes.append(Node(id: ids[v], component: graph.processes[ids[v]]?.component,
                              declared: graph.processes[ids[v]] != nil, layer: layer[v], rank: rank[v],
                              x: nodeX[v], y: nodeY[v], width: width[v], height: height[v],
                              inports: ports(inNames[v], left: true, exported: exportedIn),
                              outports: ports(outNames[v], left: false, exported: exportedOut),
                              title: titles[v], subtitle: subtitles[v]))
        }
        func anchor(_ p: PortRef, outport: Bool) -> Point {
            let node = nodes[indexOf[p.process]!]
            let list = outport ? node.outports : node.inports
            return list.first { $0.name == p.port }?.anchor ?? Point(x: node.x, y: node.y)
        }
        var edges: [Edge] = []
        var initials: [InitialPacket] = []
        for c in graph.connections {
            let end = anchor(c.tgt, outport: false)
            if let s = c.src {
                let start = anchor(s, outport: true)
                let u = indexOf[s.process]!, t = indexOf[c.tgt.process]!
                let back = u == t || backward.contains(u * n + t)
                let curve: [Point]
                if back || end.x <= start.x {
                    // Against the flow: a loop that leaves to the right, passes below both boxes and comes back in
                    // from the left, instead of a line drawn across the picture.
                    let below = max(nodes[u].y + nodes[u].height, nodes[t].y + nodes[t].height) + o.rowGap
                    curve = [start, Point(x: start.x + 80, y: below + 20), Point(x: end.x - 80, y: below + 20), end]
                } else {
                    // Across the columns between the two layers through the gap nearest the straight line, so that a
                    // long edge never runs behind a box: one cubic piece per hop, straight through each column.
                    var points = [start]
                    var from = start
                    func hop(to p: Point) {
                        let bend = max(30, (p.x - from.x) / 2)
                        points += [Point(x: from.x + bend, y: from.y), Point(x: p.x - bend, y: p.y), p]
                        from = p
                    }
                    for l in (layer[u] + 1)..<max(layer[t], layer[u] + 1) {
                        let xm = columnX[l] + columnWidth[l] / 2
                        let ideal = start.y + (end.y - start.y) * (xm - start.x) / max(end.x - start.x, 1)
                        let boxes = layers[l].map { (nodeY[$0], nodeY[$0] + height[$0]) }
                        var gaps = [boxes[0].0 - o.rowGap / 2, boxes[boxes.count - 1].1 + o.rowGap / 2]
                        for (a, b) in zip(boxes, boxes.dropFirst()) { gaps.append((a.1 + b.0) / 2) }
                        let y = gaps.min { abs($0 - ideal) < abs($1 - ideal) }!
                        hop(to: Point(x: columnX[l] - 10, y: y))
                        points += [Point(x: columnX[l], y: y), Point(x: columnX[l] + columnWidth[l], y: y),
                                   Point(x: columnX[l] + columnWidth[l] + 10, y: y)]
                        from = points[points.count - 1]
                    }
                    hop(to: end)
                    curve = points
                }
                edges.append(Edge(src: s, tgt: c.tgt, curve: curve, backward: back))
            } else if let d = c.data {
                let text = d.stringValue.map { "'" + $0 + "'" } ?? JSONWriter.string(d, indent: 0)
                initials.append(InitialPacket(tgt: c.tgt, text: cut(text, o.maxIIP),
                                              at: Point(x: end.x - 16, y: end.y), anchor: end))
            }
        }
        self.init(nodes: nodes, edges: edges, initials: initials, width: totalWidth, height: totalHeight)
    }

    /// A name as the picture shows it: control characters as visible escapes, at most `max` characters (then "…").
    public static func displayText(_ s: String, max: Int) -> String {
        var out = ""
        var count = 0
        for u in s.unicodeScalars {
            let piece: String
            switch u.value {
            case 0x0A: piece = "\\n"
            case 0x0D: piece = "\\r"
            case 0x09: piece = "\\t"
            case 0..<0x20, 0x7F..<0xA0, 0xFFFE, 0xFFFF, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                // As SafeText writes them in logs: \u001b
                let hex = String(u.value, radix: 16)
                piece = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: piece = String(u)
            }
            if count + piece.count > max {
                out += "…"
                return out
            }
            out += piece
            count += piece.count
        }
        return out
    }
}
