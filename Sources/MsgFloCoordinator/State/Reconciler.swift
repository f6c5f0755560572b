import MsgFlo

/// Which broker family the plan is for: AMQP binds at the broker; MQTT asks participants (connectinport,
/// connectoutport) or falls back to the transport's router.
package enum BrokerKind: Sendable, Hashable {
    case amqp, mqtt
    /// `.amqp` where the broker keeps bindings (``TransportCapabilities/brokerBindings``), else `.mqtt`.
    package init(_ capabilities: TransportCapabilities) {
        self = capabilities.contains(.brokerBindings) ? .amqp : .mqtt
    }
}

/// One thing to do on the broker. Executed in the order planned; each success is recorded with
/// ``WiringState/record(_:)``, a failure is simply not recorded, so the next plan tries again.
package enum WiringAction: Sendable, Hashable, CustomStringConvertible {
    /// The public queue of an exported port.
    case declareInport(String)
    case declareOutport(String)
    /// `witnesses`: the live participant ids at both ends when planned. A new id among them (a restarted process)
    /// makes the binding be made again.
    case bind(Binding, witnesses: Set<String>)
    case unbind(Binding)
    /// A coordinator command (connect… or disconnect…) for one participant.
    case command(participant: String, inqueue: String, CoordinatorCommand)
    /// An IIP for the participant `participant` of `role`, sent into its inport queue.
    case sendIIP(participant: String, role: String, port: String, queue: String, data: JSONValue)

    package var description: String {
        switch self {
        case .declareInport(let q): "declare inport \(q)"
        case .declareOutport(let q): "declare outport \(q)"
        case .bind(let b, _): "bind \(b.kind.rawValue) \(b.src) -> \(b.tgt)"
        case .unbind(let b): "unbind \(b.kind.rawValue) \(b.src) -> \(b.tgt)"
        case .command(let p, _, let c): "\(c.command.rawValue) \(c.port) <-> \(c.queue) to \(p)"
        case .sendIIP(let p, let role, let port, let q, _): "IIP to \(role).\(port) (\(q)) for \(p)"
        }
    }
}

/// How each graph edge stands, for the log and `msgflo status`.
package enum EdgeState: Sendable, Hashable, CustomStringConvertible {
    case wired
    /// A role at one end has never been seen (or lacks the port); the reason says which.
    case pending(String)
    package var description: String {
        switch self {
        case .wired: "wired"
        case .pending(let why): "pending: \(why)"
        }
    }
}

/// What has been done on the broker (the actual graph), to diff against the desired one.
package struct WiringState: Sendable, Hashable {
    package struct CommandKey: Sendable, Hashable {
        package var participant: String
        package var inqueue: String
        package var command: CoordinatorCommandName
        package var port: String
        package var queue: String
    }

    package struct IIPKey: Sendable, Hashable {
        package var role: String
        package var port: String
        package var data: JSONValue
    }

    package internal(set) var bindings: [Binding: Set<String>] = [:]
    package internal(set) var declared: Set<String> = []
    package internal(set) var commands: [CommandKey: CoordinatorCommand] = [:]
    /// Which participant ids got each IIP.
    package internal(set) var fed: [IIPKey: Set<String>] = [:]

    package init() {}

    /// Records a successful action.
    package mutating func record(_ action: WiringAction) {
        switch action {
        case .declareInport(let q): declared.insert("in:" + q)
        case .declareOutport(let q): declared.insert("out:" + q)
        case .bind(let b, let w): bindings[b, default: []].formUnion(w)
        case .unbind(let b): bindings[b] = nil
        case .command(let p, let inq, let c):
            switch c.command {
            case .connectInport, .connectOutport:
                commands[CommandKey(participant: p, inqueue: inq, command: c.command, port: c.port, queue: c.queue)] = c
            case .disconnectInport:
                commands[CommandKey(participant: p, inqueue: inq, command: .connectInport, port: c.port, queue: c.queue)] = nil
            case .disconnectOutport:
                commands[CommandKey(participant: p, inqueue: inq, command: .connectOutport, port: c.port, queue: c.queue)] = nil
            }
        case .sendIIP(let p, let role, let port, _, let data):
            fed[IIPKey(role: role, port: port, data: data), default: []].insert(p)
        }
    }

    /// A participant id is gone for good: forget what was done for it.
    package mutating func forget(participant id: String) {
        commands = commands.filter { $0.key.participant != id }
        for k in fed.keys { fed[k]!.remove(id) }
        for k in bindings.keys { bindings[k]!.remove(id) }
    }

    /// Broker state may be gone (a broker restart loses non-durable things): make every binding and declaration
    /// be made again at the next plan. Commands and IIPs stay: participants keep their connections.
    package mutating func invalidateBroker() {
        bindings = [:]
        declared = []
    }
}

/// The plan: what to do, and how each edge and node stands.
package struct WiringPlan: Sendable {
    package var actions: [WiringAction] = []
    package var edges: [DesiredGraph.Edge: EdgeState] = [:]
    /// Roles of the graph without a live participant.
    package var pendingRoles: [String] = []
    /// IIPs held back while edges out of their role are pending: plan again at this time.
    package var iipsHeldUntil: Double?
    /// The bindings and commands each edge needs.
    package var edgeWires: [DesiredGraph.Edge: (bindings: [Binding], commands: [WiringState.CommandKey])] = [:]

    /// The edges' states once the actions have run: an edge whose bindings or commands are not all done (an action
    /// failed) is pending until a retry succeeds.
    package func settled(with state: WiringState) -> [DesiredGraph.Edge: EdgeState] {
        var out = edges
        for (edge, st) in edges where st == .wired {
            guard let w = edgeWires[edge] else { continue }
            if let b = w.bindings.first(where: { state.bindings[$0] == nil }) {
                out[edge] = .pending("binding \(b.src) -> \(b.tgt) failed; retrying")
            } else if let c = w.commands.first(where: { state.commands[$0] == nil }) {
                out[edge] = .pending("\(c.command.rawValue) to \(c.participant) failed; retrying")
            }
        }
        return out
    }
}

/// Diffs the desired graph, given the participants known, against what has been done. Pure.
package struct Reconciler: Sendable {
    package var kind: BrokerKind
    package var graphName: String
    /// How long an IIP waits for the edges out of its role to be wired (so that what the IIP sets off is not lost on
    /// an unbound outport) before it is sent anyway.
    package var iipGrace: Double

    package init(kind: BrokerKind, graphName: String = "default/main", iipGrace: Double = 10) {
        self.kind = kind
        self.graphName = graphName
        self.iipGrace = iipGrace
    }

    /// An end of a wire: a node's port, or a fixed queue (an exported port's public name).
    enum End: Hashable {
        case port(DesiredGraph.Endpoint)
        case fixed(String)
    }

    struct Roles {
        let registry: ParticipantRegistry
        var cache: [String: (all: [ParticipantRegistry.Entry], alive: [ParticipantRegistry.Entry])] = [:]
        mutating func of(_ role: String) -> (all: [ParticipantRegistry.Entry], alive: [ParticipantRegistry.Entry]) {
            if let c = cache[role] { return c }
            let all = registry.participants(role: role)
            let c = (all, all.filter(\.alive))
            cache[role] = c
            return c
        }
    }

    package static func port(_ d: ParticipantDefinition, _ id: String, inport: Bool) -> PortDefinition? {
        let ports = inport ? d.inports : d.outports
        return ports.first { $0.id == id } ?? ports.first { $0.id.lowercased() == id.lowercased() }
    }

    /// The queues of an end: from the live participants of the role, else the most recently seen one.
    enum Queues {
        case success([String])
        case failure(String)
    }

    func queues(_ end: End, inport: Bool, _ roles: inout Roles) -> Queues {
        switch end {
        case .fixed(let q): return .success([q])
        case .port(let ep):
            let (all, alive) = roles.of(ep.role)
            if all.isEmpty { return .failure("no participant for role \(ep.role) yet") }
            let source = alive.isEmpty ? [all[0]] : alive
            var qs: [String] = []
            for e in source {
                if let q = Self.port(e.definition, ep.port, inport: inport)?.queue, !qs.contains(q) { qs.append(q) }
            }
            if qs.isEmpty { return .failure("\(ep.role) has no \(inport ? "inport" : "outport") '\(ep.port)'") }
            return .success(qs)
        }
    }

    /// `now` is on the registry's time line; it only matters for IIPs held back by ``iipGrace``.
    package func plan(graph: DesiredGraph, registry: ParticipantRegistry, state: inout WiringState,
                     now: Double = .infinity) -> WiringPlan {
        var plan = WiringPlan()
        var roles = Roles(registry: registry)
        var desiredBindings: [Binding: Set<String>] = [:]
        var desiredCommands: [WiringState.CommandKey: CoordinatorCommand] = [:]
        var declares: [WiringAction] = []
        // The wires of the edge being planned (see WiringPlan.settled).
        var accBindings: [Binding] = []
        var accCommands: [WiringState.CommandKey] = []
        func take(_ e: DesiredGraph.Edge) {
            plan.edgeWires[e, default: ([], [])].bindings += accBindings
            plan.edgeWires[e, default: ([], [])].commands += accCommands
            accBindings = []
            accCommands = []
        }

        func aliveIDs(_ end: End) -> Set<String> {
            if case .port(let ep) = end { return Set(roles.of(ep.role).alive.map(\.definition.id)) }
            return []
        }

        /// Wires one connection between two ends; returns its state.
        func wire(_ src: End, _ tgt: End, _ kindOf: Binding.Kind = .pubsub) -> EdgeState {
            let srcQs: [String], tgtQs: [String]
            switch queues(src, inport: false, &roles) {
            case .failure(let why): return .pending(why)
            case .success(let q): srcQs = q
            }
            switch queues(tgt, inport: true, &roles) {
            case .failure(let why): return .pending(why)
            case .success(let q): tgtQs = q
            }
            if kind == .mqtt && kindOf == .pubsub {
                // The participants of one end connect to the other end's queues themselves, when all of them (the
                // live ones; a lost old version does not hold the role back) take the command: the target's inport
                // (connectinport) first, else the source's outport (connectoutport).
                func byCommand(_ end: End, _ command: CoordinatorCommandName, inport: Bool, to others: [String]) -> EdgeState? {
                    guard case .port(let ep) = end else { return nil }
                    let (all, alive) = roles.of(ep.role)
                    guard (alive.isEmpty ? all : alive).allSatisfy({ $0.definition.supports(command) }) else { return nil }
                    if alive.isEmpty { return .pending("no live participant for role \(ep.role)") }
                    for p in alive {
                        guard let port = Self.port(p.definition, ep.port, inport: inport) else { continue }
                        for q in others where q != port.queue {
                            let c = CoordinatorCommand(command, port: port.id, queue: q, graph: graphName)
                            let key = WiringState.CommandKey(participant: p.definition.id, inqueue: p.definition.inqueue!,
                                                             command: command, port: port.id, queue: q)
                            desiredCommands[key] = c
                            accCommands.append(key)
                        }
                    }
                    return .wired
                }
                if let state = byCommand(tgt, .connectInport, inport: true, to: srcQs) { return state }
                if let state = byCommand(src, .connectOutport, inport: false, to: tgtQs) { return state }
            }
            let witnesses = aliveIDs(src).union(aliveIDs(tgt))
            for s in srcQs {
                for t in tgtQs where !(s == t && kindOf == .pubsub) {
                    desiredBindings[Binding(kindOf, src: s, tgt: t), default: []].formUnion(witnesses)
                    accBindings.append(Binding(kindOf, src: s, tgt: t))
                }
            }
            return .wired
        }

        // Plain edges.
        for edge in graph.edges where graph.isParticipant(edge.src.role) && graph.isParticipant(edge.tgt.role) {
            plan.edges[edge] = wire(.port(edge.src), .port(edge.tgt))
            take(edge)
        }
        func dead(_ worker: DesiredGraph.Endpoint, _ sink: DesiredGraph.Endpoint) -> EdgeState {
            // Messages nacked by the worker's queue go to dead-<queue>; bind the sink queue there.
            guard case .success(let wq) = queues(.port(worker), inport: true, &roles) else {
                return .pending("no participant for role \(worker.role) yet")
            }
            guard case .success(let sq) = queues(.port(sink), inport: true, &roles) else {
                return .pending("no participant for role \(sink.role) yet")
            }
            let witnesses = aliveIDs(.port(worker)).union(aliveIDs(.port(sink)))
            for w in wq {
                for s in sq {
                    desiredBindings[Binding(.deadLetter, src: w, tgt: s), default: []].formUnion(witnesses)
                    accBindings.append(Binding(.deadLetter, src: w, tgt: s))
                }
            }
            return .wired
        }

        // Round-robin and pub/sub helper nodes.
        for role in graph.roles where !graph.isParticipant(role) {
            let rr = graph.nodes[role]?.component == DesiredGraph.roundRobin
            let ins = graph.edges.filter { $0.tgt.role == role }
            let outs = graph.edges.filter { $0.src.role == role && $0.src.port.lowercased() != "deadletter" }
            let deads = graph.edges.filter { $0.src.role == role && $0.src.port.lowercased() == "deadletter" }
            for i in ins {
                for o in outs {
                    let st = wire(.port(i.src), .port(o.tgt), rr ? .roundRobin : .pubsub)
                    for e in [i, o] where plan.edges[e] == nil || st != .wired { plan.edges[e] = st }
                    let (b, c) = (accBindings, accCommands)
                    for e in [i, o] { accBindings = b; accCommands = c; take(e) }
                }
            }
            for o in outs {
                for d in deads {
                    let st = dead(o.tgt, d.tgt)
                    if plan.edges[d] == nil || st != .wired { plan.edges[d] = st }
                    take(d)
                }
            }
            for e in ins + outs + deads where plan.edges[e] == nil { plan.edges[e] = .pending("round-robin node \(role) is incomplete") }
        }
        // Exported ports: the public name is a queue of its own, bound to the node's port.
        for exp in graph.inports {
            let q = graph.exportedQueue(exp)
            if !state.declared.contains("out:" + q) { declares.append(.declareOutport(q)) }
            _ = wire(End.fixed(q), End.port(exp.endpoint))
        }
        for exp in graph.outports {
            let q = graph.exportedQueue(exp)
            if !state.declared.contains("in:" + q) { declares.append(.declareInport(q)) }
            _ = wire(End.port(exp.endpoint), End.fixed(q))
        }

        // Diff.
        plan.actions += declares
        for (b, _) in state.bindings where desiredBindings[b] == nil { plan.actions.append(.unbind(b)) }
        for (key, c) in state.commands where desiredCommands[key] == nil {
            if registry[key.participant]?.alive == true {
                let undo: CoordinatorCommandName = key.command == .connectInport ? .disconnectInport : .disconnectOutport
                plan.actions.append(.command(participant: key.participant, inqueue: key.inqueue,
                                             CoordinatorCommand(undo, port: c.port, queue: c.queue, graph: graphName)))
            } else {
                state.commands[key] = nil
            }
        }
        for (b, w) in desiredBindings.sorted(by: { ($0.key.src, $0.key.tgt) < ($1.key.src, $1.key.tgt) }) {
            if let done = state.bindings[b], w.isSubset(of: done) { continue }
            plan.actions.append(.bind(b, witnesses: w))
        }
        for (key, c) in desiredCommands.sorted(by: { ($0.key.participant, $0.key.port, $0.key.queue) < ($1.key.participant, $1.key.port, $1.key.queue) })
            where state.commands[key] == nil {
            plan.actions.append(.command(participant: key.participant, inqueue: key.inqueue, c))
        }

        // IIPs: once to every process that takes the role.
        var liveKeys: Set<WiringState.IIPKey> = []
        var outgoingPending: [String: Bool] = [:]
        for (edge, st) in plan.edges { if case .pending = st { outgoingPending[edge.src.role] = true } }
        for iip in graph.initials {
            let key = WiringState.IIPKey(role: iip.tgt.role, port: iip.tgt.port, data: iip.data)
            liveKeys.insert(key)
            let done = state.fed[key] ?? []
            for p in roles.of(iip.tgt.role).alive where !done.contains(p.definition.id) {
                if outgoingPending[iip.tgt.role] == true && now < p.firstSeen + iipGrace {
                    let until = p.firstSeen + iipGrace
                    plan.iipsHeldUntil = min(plan.iipsHeldUntil ?? until, until)
                    continue
                }
                guard let q = Self.port(p.definition, iip.tgt.port, inport: true)?.queue else { continue }
                plan.actions.append(.sendIIP(participant: p.definition.id, role: iip.tgt.role, port: iip.tgt.port,
                                             queue: q, data: iip.data))
            }
        }
        for k in state.fed.keys where !liveKeys.contains(k) { state.fed[k] = nil }

        plan.pendingRoles = graph.roles.filter { graph.isParticipant($0) && roles.of($0).alive.isEmpty }
        return plan
    }
}
