import MsgFlo
import MsgFloCoordinator

/// A binding msgflo-setup makes, as msgflo's setup computes and prints it.
package enum SetupBinding: Sendable, Equatable {
    /// `src` outport queue to `tgt` inport queue. `edge` is the graph edge it comes from.
    case pubsub(src: String, tgt: String, edge: DesiredGraph.Edge)
    /// A `msgflo/RoundRobin` node: `src` to one of the `tgt` workers, failed messages from `tgt` to `deadletter`.
    case roundRobin(name: String, src: String?, tgt: String?, deadletter: String?)

    /// msgflo's pretty format: `PUBSUB: \t a.OUT -> b.IN`; a round robin gives `DEADLETTER:\t tgt -> dead` then
    /// `ROUNDROBIN:\t src -> tgt` (each only when both ends are known).
    package var prettyLines: [String] {
        switch self {
        case .pubsub(let src, let tgt, _):
            return ["PUBSUB: \t \(src) -> \(tgt)"]
        case .roundRobin(_, let src, let tgt, let deadletter):
            var lines: [String] = []
            if let tgt, let deadletter { lines.append("DEADLETTER:\t \(tgt) -> \(deadletter)") }
            if let tgt, let src { lines.append("ROUNDROBIN:\t \(src) -> \(tgt)") }
            return lines
        }
    }

    /// The transport bindings that realise it.
    package var transportBindings: [Binding] {
        switch self {
        case .pubsub(let src, let tgt, _):
            return [Binding(.pubsub, src: src, tgt: tgt)]
        case .roundRobin(_, let src, let tgt, let deadletter):
            var out: [Binding] = []
            if let src, let tgt { out.append(Binding(.roundRobin, src: src, tgt: tgt)) }
            if let tgt, let deadletter { out.append(Binding(.deadLetter, src: tgt, tgt: deadletter)) }
            return out
        }
    }
}

package enum SetupBindings {
    /// The printout after `Set up bindings:` (msgflo prints `console.log('Set up bindings:\n', lines)`, hence the
    /// space that starts the second line).
    package static func pretty(_ bindings: [SetupBinding]) -> String {
        prettyLines(bindings).joined(separator: "\n")
    }

    /// ``pretty(_:)`` as the lines it is made of, for printing one by one (each escaped on its own).
    package static func prettyLines(_ bindings: [SetupBinding]) -> [String] {
        let lines = bindings.flatMap(\.prettyLines)
        return ["Set up bindings:", " " + (lines.first ?? "")] + lines.dropFirst()
    }

    /// Static mode, msgflo's `graphBindings`: queue names by the `role.PORT` convention. Pubsub bindings in edge
    /// order between participants, then one round-robin binding per `msgflo/RoundRobin` node.
    package static func fromConvention(_ graph: DesiredGraph) -> [SetupBinding] {
        SetupPlan(graph, definitions: SetupPlan.conventionDefinitions(graph), kind: .amqp).bindings
    }
}

/// What msgflo-setup wires, planned by the coordinator's ``Reconciler`` in one shot (from an empty
/// ``WiringState``): the same planner the daemon runs, on the part of the graph msgflo's setup wires (edges between
/// participants that name a component, and `msgflo/RoundRobin` nodes; no IIPs, no exported ports), with the
/// participants it knows (announced ones, or, in static mode, ones made up by the `role.PORT` convention).
package struct SetupPlan: Sendable {
    /// The Reconciler's plan: its actions are what the tool does.
    package var plan: WiringPlan
    /// The bindings as msgflo's setup prints them: pubsub in edge order, then one per round-robin node.
    package var bindings: [SetupBinding]
    /// Edges the plan left pending (a role or port nobody announced), in graph order.
    package var pending: [DesiredGraph.Edge]
    let roundRobins: Set<String>

    package init(_ graph: DesiredGraph, definitions: some Sequence<ParticipantDefinition>, kind: BrokerKind) {
        let g = Self.wiredPart(of: graph)
        var registry = ParticipantRegistry()
        for d in definitions { _ = registry.observe(d, at: 0) }
        var state = WiringState()
        plan = Reconciler(kind: kind).plan(graph: g, registry: registry, state: &state)
        bindings = []
        pending = []
        roundRobins = Set(g.roles.filter { g.nodes[$0]?.component == DesiredGraph.roundRobin })
        func queue(_ end: DesiredGraph.Endpoint, inport: Bool) -> String {
            registry.alive(role: end.role).lazy.compactMap { Reconciler.port($0.definition, end.port, inport: inport)?.queue }
                .first ?? end.conventionQueue
        }
        for edge in g.edges where g.isParticipant(edge.src.role) && g.isParticipant(edge.tgt.role) {
            guard plan.edges[edge] == .wired, let w = plan.edgeWires[edge] else { pending.append(edge); continue }
            if let b = w.bindings.first {
                bindings.append(.pubsub(src: b.src, tgt: b.tgt, edge: edge))
            } else if let c = w.commands.first {
                bindings.append(c.command == .connectInport
                    ? .pubsub(src: c.queue, tgt: queue(edge.tgt, inport: true), edge: edge)
                    : .pubsub(src: queue(edge.src, inport: false), tgt: c.queue, edge: edge))
            }
        }
        for role in g.roles where roundRobins.contains(role) {
            let outs = g.edges.filter { $0.src.role == role }
            for e in g.edges where (e.src.role == role || e.tgt.role == role) && plan.edges[e] != .wired {
                pending.append(e)
            }
            let wires = outs.flatMap { plan.edgeWires[$0]?.bindings ?? [] }
            let rr = wires.last { $0.kind == .roundRobin }
            let dead = wires.last { $0.kind == .deadLetter }
            bindings.append(.roundRobin(name: role, src: rr?.src, tgt: rr?.tgt ?? dead?.src, deadletter: dead?.tgt))
        }
    }

    /// msgflo's message for the first pending edge in discover mode: `No participant info found for '<role>'` or
    /// `Could not find <port> in <ports>`.
    package func failure(_ definitions: [String: ParticipantDefinition]) -> ToolFailure? {
        for edge in pending {
            for (end, inport) in [(edge.src, false), (edge.tgt, true)] where !roundRobins.contains(end.role) {
                guard let d = definitions[end.role] else { return ToolFailure("No participant info found for '\(end.role)'") }
                if Reconciler.port(d, end.port, inport: inport)?.queue == nil {
                    let ports = inport ? d.inports : d.outports
                    return ToolFailure("Could not find \(end.port) in \(JSONValue.array(ports.map(\.json)).serialized)")
                }
            }
        }
        return nil
    }

    /// The part of a graph msgflo's setup wires: participants that name a component and round-robin nodes, the
    /// edges between them.
    static func wiredPart(of graph: DesiredGraph) -> DesiredGraph {
        let keep = graph.roles.filter {
            graph.isDeclaredParticipant($0) || graph.nodes[$0]?.component == DesiredGraph.roundRobin
        }
        let kept = Set(keep)
        return DesiredGraph(name: graph.name, nodes: keep.map { ($0, graph.nodes[$0]!) },
                            edges: graph.edges.filter { kept.contains($0.src.role) && kept.contains($0.tgt.role) })
    }

    /// Static mode: one participant per role that names a component, with the ports its edges use, queues named
    /// by the `role.PORT` convention (msgflo's `graphBindings`).
    package static func conventionDefinitions(_ graph: DesiredGraph) -> [ParticipantDefinition] {
        var ins: [String: [PortDefinition]] = [:], outs: [String: [PortDefinition]] = [:]
        for e in graph.edges {
            outs[e.src.role, default: []].append(PortDefinition(id: e.src.port, queue: e.src.conventionQueue))
            ins[e.tgt.role, default: []].append(PortDefinition(id: e.tgt.port, queue: e.tgt.conventionQueue))
        }
        return graph.roles.filter(graph.isDeclaredParticipant).map { role in
            ParticipantDefinition(id: "convention:" + role, role: role, component: graph.nodes[role]!.component,
                                  inports: ins[role] ?? [], outports: outs[role] ?? [])
        }
    }
}

/// `msgflo-procfile`: a Procfile (Heroku, foreman) from a graph and the component library.
package enum Procfile {
    /// One `<role>: <command>` line per process in graph order, ignored ones left out, then a newline and the
    /// `--include` lines: msgflo's format, byte for byte (its `console.log` adds the final newline, which the caller
    /// prints).
    package static func generate(_ graph: DesiredGraph, library: any CommandLibrary, ignore: [String],
                                include: [String]) throws -> String {
        try lines(graph, library: library, ignore: ignore, include: include).joined(separator: "\n")
    }

    /// ``generate(_:library:ignore:include:)`` as the lines it is made of, for printing one by one (each escaped on
    /// its own: a command from the library cannot add lines of its own).
    package static func lines(_ graph: DesiredGraph, library: any CommandLibrary, ignore: [String],
                             include: [String]) throws -> [String] {
        var lines: [String] = []
        for role in graph.roles where !ignore.contains(role) {
            let command = try library.command(component: graph.nodes[role]?.component ?? "", role: role, graph: graph)
            lines.append("\(role): \(command)")
        }
        // msgflo: roles.join("\n") + "\n" + includes.join("\n")
        return (lines.isEmpty ? [""] : lines) + (include.isEmpty ? [""] : include)
    }
}
