import MsgFlo

/// A graph as msgflo sees it: nodes (roles) with their components, edges between their ports, IIPs and exported
/// ports, each in graph order. The network the coordinator keeps the broker matching, and the graph the tools
/// (msgflo-setup, msgflo-procfile) start and connect. Built from an FBP graph (.fbp or .json) or by hand.
package struct DesiredGraph: Sendable, Hashable {
    package struct Node: Sendable, Hashable {
        /// The component; "" when the graph names none.
        package var component: String
        /// Whether the graph names a component (a JSON graph may leave it out).
        package var namesComponent: Bool
        package var metadata: JSONValue?
        package init(component: String?, metadata: JSONValue? = nil) {
            self.component = component ?? ""
            self.namesComponent = component != nil
            self.metadata = metadata
        }
    }

    package struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        package var role: String
        package var port: String
        package init(_ role: String, _ port: String) {
            self.role = role
            self.port = port
        }
        package var description: String { "\(role).\(port)" }
        /// msgflo's queue naming convention: `<role>.<PORT upper-cased>`.
        package var conventionQueue: String { PortDefinition.defaultQueue(role: role, port: port) }
    }

    package struct Edge: Sendable, Hashable, CustomStringConvertible {
        package var src: Endpoint
        package var tgt: Endpoint
        package var metadata: JSONValue?
        package init(_ src: Endpoint, _ tgt: Endpoint, metadata: JSONValue? = nil) {
            self.src = src
            self.tgt = tgt
            self.metadata = metadata
        }
        package var description: String { "\(src.role) \(src.port.uppercased()) -> \(tgt.port.uppercased()) \(tgt.role)" }
    }

    package struct Initial: Sendable, Hashable {
        package var data: JSONValue
        package var tgt: Endpoint
        package var metadata: JSONValue?
        package init(_ data: JSONValue, to tgt: Endpoint, metadata: JSONValue? = nil) {
            self.data = data
            self.tgt = tgt
            self.metadata = metadata
        }
    }

    /// An exported port: the graph's public name for a node's port.
    package struct Exported: Sendable, Hashable {
        package var name: String
        package var endpoint: Endpoint
        package init(_ name: String, _ endpoint: Endpoint) {
            self.name = name
            self.endpoint = endpoint
        }
    }

    package static let roundRobin = "msgflo/RoundRobin"
    package static let pubSub = "msgflo/PubSub"

    package var name: String
    /// Roles in graph order.
    package private(set) var roles: [String] = []
    package private(set) var nodes: [String: Node] = [:]
    package var edges: [Edge]
    package var initials: [Initial]
    package var inports: [Exported]
    package var outports: [Exported]

    package init(name: String = "main", nodes: [(String, Node)] = [], edges: [Edge] = [], initials: [Initial] = [],
                inports: [Exported] = [], outports: [Exported] = []) {
        self.name = name
        self.edges = edges
        self.initials = initials
        self.inports = inports
        self.outports = outports
        for (role, node) in nodes { setNode(role, node) }
    }

    package mutating func setNode(_ role: String, _ node: Node) {
        if nodes[role] == nil { roles.append(role) }
        nodes[role] = node
    }

    package mutating func removeNode(_ role: String) {
        guard nodes.removeValue(forKey: role) != nil else { return }
        roles.removeAll { $0 == role }
        edges.removeAll { $0.src.role == role || $0.tgt.role == role }
        initials.removeAll { $0.tgt.role == role }
        inports.removeAll { $0.endpoint.role == role }
        outports.removeAll { $0.endpoint.role == role }
    }

    /// Renames a node where it stands (graph order kept), with its edges, IIPs and exported ports. False when
    /// `from` is not a node or `to` already is one.
    @discardableResult
    package mutating func renameNode(_ from: String, to: String) -> Bool {
        guard from != to, let node = nodes[from], nodes[to] == nil, let i = roles.firstIndex(of: from) else { return false }
        nodes[from] = nil
        nodes[to] = node
        roles[i] = to
        func fix(_ e: inout Endpoint) { if e.role == from { e.role = to } }
        for k in edges.indices { fix(&edges[k].src); fix(&edges[k].tgt) }
        for k in initials.indices { fix(&initials[k].tgt) }
        for k in inports.indices { fix(&inports[k].endpoint) }
        for k in outports.indices { fix(&outports[k].endpoint) }
        return true
    }

    /// A node run by a participant (not one of the broker-level helpers RoundRobin and PubSub), as the coordinator
    /// reads it: a role the graph does not declare, or a node without a component, is one it waits for.
    package func isParticipant(_ role: String) -> Bool {
        guard let c = nodes[role]?.component else { return true }
        return c != Self.roundRobin && c != Self.pubSub
    }

    /// msgflo's `isParticipant` as its tools apply it: a node of the graph that names a component other than the
    /// broker-level helpers (a role the graph does not declare, or a node without a component, is not one).
    package func isDeclaredParticipant(_ role: String) -> Bool {
        guard let node = nodes[role], node.namesComponent else { return false }
        return isParticipant(role)
    }

    /// The queue of an exported port, by msgflo's naming convention with the graph as the role:
    /// `<graph name>.<PUBLIC NAME UPPER-CASED>` (an exported inport is an outport of the graph to send into, an
    /// exported outport an inport queue to read from).
    package func exportedQueue(_ e: Exported) -> String { PortDefinition.defaultQueue(role: name, port: e.name) }

    /// The IIPs of a role, in graph order, as `#IIPS` takes them.
    package func iips(for role: String) -> [(port: String, data: JSONValue)] {
        initials.filter { $0.tgt.role == role }.map { ($0.tgt.port, $0.data) }
    }
}

// MARK: - The FBP JSON graph format

extension DesiredGraph {
    /// Reads the JSON graph format (noflo/fbp-graph): `processes`, `connections` (edges, and IIPs with `data`),
    /// `inports`, `outports`. Errors are one line and name the place.
    package init(json: JSONValue, source: String = "graph") throws(MsgFloError) {
        func bad(_ what: String) -> MsgFloError { MsgFloError(.invalidArgument, "\(source): \(what)") }
        guard case .object = json else { throw bad("expected a JSON object") }
        self.init(name: json["properties"]?["name"]?.stringValue ?? "main")
        if let processes = json["processes"], processes != .null {
            guard let o = processes.objectValue else { throw bad("'processes' must be an object") }
            for role in o.keys.sorted() {
                guard let component = o[role]?["component"]?.stringValue else {
                    throw bad("process '\(role)' has no component")
                }
                setNode(role, Node(component: component, metadata: o[role]?["metadata"]))
            }
        }
        func endpoint(_ v: JSONValue?, _ place: String) throws(MsgFloError) -> Endpoint {
            guard let process = v?["process"]?.stringValue, let port = v?["port"]?.stringValue else {
                throw bad("\(place) needs 'process' and 'port'")
            }
            return Endpoint(process, port)
        }
        if let connections = json["connections"], connections != .null {
            guard let a = connections.arrayValue else { throw bad("'connections' must be an array") }
            for (i, c) in a.enumerated() {
                let tgt = try endpoint(c["tgt"], "connections[\(i)].tgt")
                if let data = c["data"] {
                    initials.append(Initial(data, to: tgt, metadata: c["metadata"]))
                } else {
                    edges.append(Edge(try endpoint(c["src"], "connections[\(i)].src"), tgt, metadata: c["metadata"]))
                }
            }
        }
        func exported(_ key: String) throws(MsgFloError) -> [Exported] {
            guard let v = json[key], v != .null else { return [] }
            guard let o = v.objectValue else { throw bad("'\(key)' must be an object") }
            var out: [Exported] = []
            for name in o.keys.sorted() { out.append(Exported(name, try endpoint(o[name], "\(key).\(name)"))) }
            return out
        }
        inports = try exported("inports")
        outports = try exported("outports")
        for e in edges {
            for r in [e.src.role, e.tgt.role] where nodes[r] == nil { throw bad("connection uses unknown process '\(r)'") }
        }
    }
}
