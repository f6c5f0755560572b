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
        fromGraph(graph) { $0.conventionQueue } tgtQueue: { $0.conventionQueue }
    }

    /// Discover mode: the queues the participants announced. Port names are matched as written, else ignoring case
    /// (the .fbp language may change their case). Throws msgflo's `Could not find <port> in <ports>`.
    package static func fromDefinitions(_ graph: DesiredGraph, _ definitions: [String: ParticipantDefinition]) throws -> [SetupBinding] {
        var failure: ToolFailure?
        func queue(_ end: DesiredGraph.Endpoint, outport: Bool) -> String {
            guard let definition = definitions[end.role] else {
                failure = failure ?? ToolFailure("No participant info found for '\(end.role)'")
                return end.conventionQueue
            }
            let ports = outport ? definition.outports : definition.inports
            guard let port = matchPort(end.port, in: ports), let q = port.queue else {
                failure = failure ?? ToolFailure("Could not find \(end.port) in \(JSONValue.array(ports.map(\.json)).serialized)")
                return end.conventionQueue
            }
            return q
        }
        let bindings = fromGraph(graph) { queue($0, outport: true) } tgtQueue: { queue($0, outport: false) }
        if let failure { throw failure }
        return bindings
    }

    package static func matchPort(_ name: String, in ports: [PortDefinition]) -> PortDefinition? {
        ports.first { $0.id == name } ?? ports.first { $0.id.lowercased() == name.lowercased() }
    }

    static func fromGraph(_ graph: DesiredGraph, srcQueue: (DesiredGraph.Endpoint) -> String,
                          tgtQueue: (DesiredGraph.Endpoint) -> String) -> [SetupBinding] {
        var pubsub: [SetupBinding] = []
        var rrOrder: [String] = []
        var rr: [String: (src: String?, tgt: String?, dead: String?)] = [:]
        for role in graph.roles where graph.nodes[role]?.component == DesiredGraph.roundRobin {
            rrOrder.append(role)
            rr[role] = (nil, nil, nil)
        }
        for edge in graph.edges {
            if rr[edge.src.role] != nil {
                if edge.src.port.lowercased() == "deadletter" {
                    rr[edge.src.role]!.dead = tgtQueue(edge.tgt)
                } else {
                    rr[edge.src.role]!.tgt = tgtQueue(edge.tgt)
                }
            } else if rr[edge.tgt.role] != nil {
                rr[edge.tgt.role]!.src = srcQueue(edge.src)
            } else if graph.isDeclaredParticipant(edge.src.role) && graph.isDeclaredParticipant(edge.tgt.role) {
                pubsub.append(.pubsub(src: srcQueue(edge.src), tgt: tgtQueue(edge.tgt), edge: edge))
            }
        }
        return pubsub + rrOrder.map { .roundRobin(name: $0, src: rr[$0]!.src, tgt: rr[$0]!.tgt, deadletter: rr[$0]!.dead) }
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
