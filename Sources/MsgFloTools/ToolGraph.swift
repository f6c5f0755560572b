import MsgFlo

/// The parts of a graph the tools use, in the graph's order: processes (roles) with their components, edges between
/// ports, and initial information packets. Built from the FBP parser's graph model.
public struct ToolGraph: Sendable, Equatable {
    public struct Process: Sendable, Equatable {
        public var name: String
        public var component: String?
        public init(name: String, component: String?) {
            self.name = name
            self.component = component
        }
    }

    public struct Endpoint: Sendable, Hashable {
        public var process: String
        public var port: String
        public init(_ process: String, _ port: String) {
            self.process = process
            self.port = port
        }
        /// msgflo's queue naming convention: `<process>.<PORT upper-cased>`.
        public var conventionQueue: String { PortDefinition.defaultQueue(role: process, port: port) }
    }

    public struct Edge: Sendable, Hashable {
        public var src: Endpoint
        public var tgt: Endpoint
        public init(src: Endpoint, tgt: Endpoint) {
            self.src = src
            self.tgt = tgt
        }
    }

    public struct Initial: Sendable, Equatable {
        public var data: JSONValue
        public var tgt: Endpoint
        public init(data: JSONValue, tgt: Endpoint) {
            self.data = data
            self.tgt = tgt
        }
    }

    public enum Connection: Sendable, Equatable {
        case edge(Edge)
        case initial(Initial)
    }

    public var processes: [Process]
    /// Edges and IIPs in the order the graph gives them.
    public var connections: [Connection]

    public init(processes: [Process], connections: [Connection]) {
        self.processes = processes
        self.connections = connections
    }

    public var edges: [Edge] { connections.compactMap { if case .edge(let e) = $0 { e } else { nil } } }
    public var initials: [Initial] { connections.compactMap { if case .initial(let i) = $0 { i } else { nil } } }

    public func process(_ name: String) -> Process? { processes.first { $0.name == name } }

    public static let roundRobin = "msgflo/RoundRobin"
    public static let pubSub = "msgflo/PubSub"

    /// msgflo's `isParticipant`: a process with a component that is not one of the broker-level helpers.
    public func isParticipant(_ name: String) -> Bool {
        guard let component = process(name)?.component else { return false }
        return component != Self.roundRobin && component != Self.pubSub
    }

    /// The IIPs of a role as a port → data map.
    public func iips(for role: String) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for iip in initials where iip.tgt.process == role { values[iip.tgt.port] = iip.data }
        return values
    }
}

/// Turns a component and a role into the command that starts it (the component library).
public protocol CommandLibrary: Sendable {
    /// The command line for `component` running as `role`, with `#ROLE` and `#IIPS` expanded. Throws msgflo's
    /// `No component <component> defined for role <role>` when the library has no such component.
    func command(component: String, role: String, graph: ToolGraph) throws -> String
}
