import Foundation
import MsgFlo
import MsgFloCoordinator

extension FBPRuntime {
    /// The graph a request names: msgflo's runtime has one graph, the coordinator's.
    static func graphID(_ r: Request) throws(ProtocolError) -> String {
        guard let v = r.payload["graph"], v != .null else { throw ProtocolError("No graph specified") }
        guard let s = v.stringValue else { throw ProtocolError("'graph' must be a string") }
        return s
    }

    /// Runs an edit of the coordinator's desired graph, after checking that the request names that graph. The edit
    /// is applied at once (the reconciler carries it out in its next pass) and `body` must refuse (throw) before it
    /// changes anything. `nodes`: whether it adds, removes or renames nodes (participants to start or stop).
    func edit<R: Sendable>(_ r: Request, nodes: Bool = false,
                           _ body: @escaping @Sendable (inout DesiredGraph) throws(MsgFloError) -> R)
        async throws(ProtocolError) -> R {
        try requireWrite(r)
        let id = try Self.graphID(r)
        do {
            return try await coordinator.edit(nodes: nodes) { (g: inout DesiredGraph) throws(MsgFloError) -> R in
                guard g.name == id else { throw MsgFloError(.notFound, "Requested graph not found") }
                return try body(&g)
            }
        } catch {
            throw ProtocolError(error.message)
        }
    }

    static func notFound(_ what: String) -> MsgFloError { MsgFloError(.notFound, what) }

    func graphCommand(_ r: Request) async throws(ProtocolError) {
        let p = r.payload
        switch r.command {
        case "clear":
            try requireWrite(r)
            let id = try Self.string(p, "id")
            guard !id.contains("#"), !id.contains("+") else { throw ProtocolError("'id' must not contain '#' or '+'") }
            var props: JSONObject = ["id": .string(id)]
            for k in ["name", "library", "icon", "description"] { if let v = p[k]?.stringValue { props[k] = .string(Self.clip(v, 1000)) } }
            if let m = p["main"]?.boolValue { props["main"] = .bool(m) }
            // A new graph is a new network: not started until network:start (IIPs wait for it).
            await coordinator.setNetworkStarted(false)
            do {
                try await coordinator.edit { (g: inout DesiredGraph) throws(MsgFloError) in g = DesiredGraph(name: id) }
            } catch { throw ProtocolError(error.message) }
            state.withLock { s in
                s.groups = []
                s.properties = props
            }
            graphName.withLock { $0 = id }
            broadcast("graph", "clear", .object(props), to: r)

        case "addnode":
            let id = try Self.nodeName(p, "id")
            let component = try Self.string(p, "component")
            let metadata = try Self.metadata(p)
            try await edit(r, nodes: true) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard g.nodes[id] == nil else { throw MsgFloError(.invalidArgument, "Node \(id) already exists") }
                g.setNode(id, .init(component: component, metadata: metadata.map(JSONValue.object)))
            }
            broadcast("graph", "addnode", ["id": .string(id), "component": .string(component),
                                            "metadata": .object(metadata ?? [:]), "graph": .string(try Self.graphID(r))], to: r)

        case "removenode":
            let id = try Self.nodeName(p, "id")
            let graph = try Self.graphID(r)
            let removed = try await edit(r, nodes: true) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard g.nodes[id] != nil else { throw FBPRuntime.notFound("Requested node \(id) not found") }
                let edges = g.edges.filter { $0.src.role == id || $0.tgt.role == id }
                let initials = g.initials.filter { $0.tgt.role == id }
                let ins = g.inports.filter { $0.endpoint.role == id }.map(\.name)
                let outs = g.outports.filter { $0.endpoint.role == id }.map(\.name)
                g.removeNode(id)
                return (edges, initials, ins, outs)
            }
            for e in removed.0 {
                broadcast("graph", "removeedge", ["src": Self.portJSON(e.src), "tgt": Self.portJSON(e.tgt), "graph": .string(graph)], to: r)
            }
            for i in removed.1 {
                broadcast("graph", "removeinitial", ["src": ["data": i.data], "tgt": Self.portJSON(i.tgt), "graph": .string(graph)], to: r)
            }
            for n in removed.2 { broadcast("graph", "removeinport", ["public": .string(n), "graph": .string(graph)], to: r) }
            for n in removed.3 { broadcast("graph", "removeoutport", ["public": .string(n), "graph": .string(graph)], to: r) }
            state.withLock { s in for k in s.groups.indices { s.groups[k].nodes.removeAll { $0 == id } } }
            broadcast("graph", "removenode", ["id": .string(id), "graph": .string(graph)], to: r)
            if !removed.2.isEmpty || !removed.3.isEmpty { await broadcastPorts() }

        case "renamenode":
            let from = try Self.nodeName(p, "from"), to = try Self.nodeName(p, "to")
            try await edit(r, nodes: true) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard g.nodes[from] != nil else { throw FBPRuntime.notFound("Requested node \(from) not found") }
                guard g.nodes[to] == nil else { throw MsgFloError(.invalidArgument, "Node \(to) already exists") }
                g.renameNode(from, to: to)
            }
            state.withLock { s in for k in s.groups.indices { s.groups[k].nodes = s.groups[k].nodes.map { $0 == from ? to : $0 } } }
            broadcast("graph", "renamenode", ["from": .string(from), "to": .string(to), "graph": .string(try Self.graphID(r))], to: r)

        case "changenode":
            let id = try Self.nodeName(p, "id")
            guard let change = try Self.metadata(p) else { throw ProtocolError("missing 'metadata'") }
            let merged = try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) -> JSONValue in
                guard var node = g.nodes[id] else { throw FBPRuntime.notFound("Requested node \(id) not found") }
                node.metadata = FBPRuntime.merge(node.metadata, change)
                g.setNode(id, node)
                return node.metadata!
            }
            broadcast("graph", "changenode", ["id": .string(id), "metadata": merged, "graph": .string(try Self.graphID(r))], to: r)

        case "addedge":
            let src = try Self.portRef(p, "src"), tgt = try Self.portRef(p, "tgt")
            let metadata = try Self.metadata(p)
            try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) in
                for n in [src.role, tgt.role] where g.nodes[n] == nil { throw FBPRuntime.notFound("Requested node \(n) not found") }
                guard !g.edges.contains(where: { $0.src == src && $0.tgt == tgt }) else { return }
                g.edges.append(.init(src, tgt, metadata: metadata.map(JSONValue.object)))
            }
            var out: JSONObject = ["src": Self.portJSON(src), "tgt": Self.portJSON(tgt), "graph": .string(try Self.graphID(r))]
            if let metadata { out["metadata"] = .object(metadata) }
            broadcast("graph", "addedge", .object(out), to: r)

        case "removeedge":
            let src = try Self.portRef(p, "src"), tgt = try Self.portRef(p, "tgt")
            try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard let i = g.edges.firstIndex(where: { $0.src == src && $0.tgt == tgt }) else {
                    throw FBPRuntime.notFound("Requested edge \(src) -> \(tgt) not found")
                }
                g.edges.remove(at: i)
            }
            broadcast("graph", "removeedge", ["src": Self.portJSON(src), "tgt": Self.portJSON(tgt), "graph": .string(try Self.graphID(r))], to: r)

        case "changeedge":
            let src = try Self.portRef(p, "src"), tgt = try Self.portRef(p, "tgt")
            let change = try Self.metadata(p) ?? [:]
            let merged = try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) -> JSONValue in
                guard let i = g.edges.firstIndex(where: { $0.src == src && $0.tgt == tgt }) else {
                    throw FBPRuntime.notFound("Requested edge \(src) -> \(tgt) not found")
                }
                g.edges[i].metadata = FBPRuntime.merge(g.edges[i].metadata, change)
                return g.edges[i].metadata!
            }
            broadcast("graph", "changeedge", ["src": Self.portJSON(src), "tgt": Self.portJSON(tgt), "metadata": merged,
                                               "graph": .string(try Self.graphID(r))], to: r)

        case "addinitial":
            guard let srcObject = p["src"]?.objectValue, let data = srcObject["data"] else {
                throw ProtocolError("'src' must be an object with 'data'")
            }
            let tgt = try Self.portRef(p, "tgt")
            let metadata = try Self.metadata(p)
            try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard g.nodes[tgt.role] != nil else { throw FBPRuntime.notFound("Requested node \(tgt.role) not found") }
                g.initials.append(.init(data, to: tgt, metadata: metadata.map(JSONValue.object)))
            }
            var out: JSONObject = ["src": ["data": data], "tgt": Self.portJSON(tgt), "graph": .string(try Self.graphID(r))]
            if let metadata { out["metadata"] = .object(metadata) }
            broadcast("graph", "addinitial", .object(out), to: r)

        case "removeinitial":
            let tgt = try Self.portRef(p, "tgt")
            let data = p["src"]?.objectValue?["data"]
            let removed = try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) -> DesiredGraph.Initial in
                guard let i = g.initials.firstIndex(where: { iip in iip.tgt == tgt && (data.map { iip.data == $0 } ?? true) }) else {
                    throw FBPRuntime.notFound("Requested initial packet for \(tgt) not found")
                }
                return g.initials.remove(at: i)
            }
            broadcast("graph", "removeinitial", ["src": ["data": removed.data], "tgt": Self.portJSON(tgt),
                                                  "graph": .string(try Self.graphID(r))], to: r)

        case "addinport", "addoutport":
            let inport = r.command == "addinport"
            let name = try Self.string(p, "public", limit: 200)
            guard !name.contains("#"), !name.contains("+") else { throw ProtocolError("'public' must not contain '#' or '+'") }
            let node = try Self.nodeName(p, "node"), port = try Self.string(p, "port", limit: 200)
            let metadata = try Self.metadata(p)
            try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard g.nodes[node] != nil else { throw FBPRuntime.notFound("Requested node \(node) not found") }
                let e = DesiredGraph.Exported(name, .init(node, port))
                if inport {
                    if let i = g.inports.firstIndex(where: { $0.name == name }) { g.inports[i] = e } else { g.inports.append(e) }
                } else {
                    if let i = g.outports.firstIndex(where: { $0.name == name }) { g.outports[i] = e } else { g.outports.append(e) }
                }
            }
            var out: JSONObject = ["public": .string(name), "node": .string(node), "port": .string(port),
                                            "graph": .string(try Self.graphID(r))]
            if let metadata { out["metadata"] = .object(metadata) }
            broadcast("graph", r.command, .object(out), to: r)
            await broadcastPorts()

        case "removeinport", "removeoutport":
            let inport = r.command == "removeinport"
            let name = try Self.string(p, "public", limit: 200)
            try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) in
                guard (inport ? g.inports : g.outports).contains(where: { $0.name == name }) else {
                    throw FBPRuntime.notFound("Requested port \(name) not found")
                }
                if inport { g.inports.removeAll { $0.name == name } } else { g.outports.removeAll { $0.name == name } }
            }
            broadcast("graph", r.command, ["public": .string(name), "graph": .string(try Self.graphID(r))], to: r)
            await broadcastPorts()

        case "renameinport", "renameoutport":
            let inport = r.command == "renameinport"
            let from = try Self.string(p, "from", limit: 200), to = try Self.string(p, "to", limit: 200)
            guard !to.contains("#"), !to.contains("+") else { throw ProtocolError("'to' must not contain '#' or '+'") }
            try await edit(r) { (g: inout DesiredGraph) throws(MsgFloError) in
                var list = inport ? g.inports : g.outports
                guard let i = list.firstIndex(where: { $0.name == from }) else { throw FBPRuntime.notFound("Requested port \(from) not found") }
                guard from == to || !list.contains(where: { $0.name == to }) else {
                    throw MsgFloError(.invalidArgument, "Port \(to) already exists")
                }
                list[i].name = to
                if inport { g.inports = list } else { g.outports = list }
            }
            broadcast("graph", r.command, ["from": .string(from), "to": .string(to), "graph": .string(try Self.graphID(r))], to: r)
            await broadcastPorts()

        case "addgroup", "removegroup", "renamegroup", "changegroup":
            try await groupCommand(r)

        default:
            throw ProtocolError("unknown command graph:\(Self.clip(r.command))")
        }
    }

    func broadcastPorts() async {
        let graph = await coordinator.currentGraph
        broadcast("runtime", "ports", portsPayload(graph))
    }

    func groupCommand(_ r: Request) async throws(ProtocolError) {
        try requireWrite(r)
        let id = try Self.graphID(r)
        guard id == (await coordinator.currentGraph.name) else { throw ProtocolError("Requested graph not found") }
        let p = r.payload
        var out: JSONObject = ["graph": .string(id)]
        switch r.command {
        case "addgroup":
            let name = try Self.string(p, "name")
            guard let nodes = p["nodes"]?.arrayValue, nodes.count <= 100_000 else { throw ProtocolError("'nodes' must be an array") }
            var names: [String] = []
            for n in nodes {
                guard let s = n.stringValue, s.utf8.count <= 200 else { throw ProtocolError("'nodes' must hold node names") }
                names.append(s)
            }
            let metadata = try Self.metadata(p)
            let exists = state.withLock { s -> Bool in
                if s.groups.contains(where: { $0.name == name }) { return true }
                s.groups.append((name, names, metadata.map(JSONValue.object)))
                return false
            }
            if exists { throw ProtocolError("Group \(name) already exists") }
            out["name"] = .string(name)
            out["nodes"] = .array(names.map(JSONValue.string))
            if let metadata { out["metadata"] = .object(metadata) }
        case "removegroup":
            let name = try Self.string(p, "name")
            let found = state.withLock { s -> Bool in
                guard let i = s.groups.firstIndex(where: { $0.name == name }) else { return false }
                s.groups.remove(at: i)
                return true
            }
            if !found { throw ProtocolError("Requested group \(name) not found") }
            out["name"] = .string(name)
        case "renamegroup":
            let from = try Self.string(p, "from"), to = try Self.string(p, "to")
            let result = state.withLock { s -> String? in
                guard let i = s.groups.firstIndex(where: { $0.name == from }) else { return "Requested group \(from) not found" }
                if from != to && s.groups.contains(where: { $0.name == to }) { return "Group \(to) already exists" }
                s.groups[i].name = to
                return nil
            }
            if let result { throw ProtocolError(result) }
            out["from"] = .string(from)
            out["to"] = .string(to)
        default:  // changegroup
            let name = try Self.string(p, "name")
            guard let change = try Self.metadata(p) else { throw ProtocolError("missing 'metadata'") }
            let merged = state.withLock { s -> JSONValue? in
                guard let i = s.groups.firstIndex(where: { $0.name == name }) else { return nil }
                s.groups[i].metadata = FBPRuntime.merge(s.groups[i].metadata, change)
                return s.groups[i].metadata
            }
            guard let merged else { throw ProtocolError("Requested group \(name) not found") }
            out["name"] = .string(name)
            out["metadata"] = merged
        }
        broadcast("graph", r.command, .object(out), to: r)
        coordinator.events.emit(.graphChanged)
    }
}
