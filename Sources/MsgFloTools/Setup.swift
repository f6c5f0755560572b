import Dispatch
import Foundation
import MsgFlo
import MsgFloCoordinator
import Synchronization

/// `msgflo-setup`: starts a graph's participants (optionally) and connects their queues.
package struct Setup {
    package struct Options: Sendable {
        package var participants = false
        package var only: [String]?
        package var ignore: [String] = []
        package var forward: Set<String> = []
        package var discover = false
        package var timeout: Duration = .seconds(30)
        package var forever = false
        package var shell: String?
        package init() {}
    }

    package var graph: DesiredGraph
    package var options: Options
    package var library: (any CommandLibrary)?
    package var environment: [String: String]
    package var out: @Sendable (String) -> Void
    package var err: @Sendable (String) -> Void

    package init(graph: DesiredGraph, options: Options, library: (any CommandLibrary)?, environment: [String: String],
                out: @escaping @Sendable (String) -> Void = Output.line,
                err: @escaping @Sendable (String) -> Void = Output.error) {
        self.graph = graph
        self.options = options
        self.library = library
        self.environment = environment
        self.out = out
        self.err = err
    }

    /// The roles `--participants` starts: graph processes that are participants, limited by `--only`, less
    /// `--ignore`, in graph order.
    package func rolesToStart() -> [String] {
        var names = graph.roles
        if let only = options.only { names = names.filter(only.contains) }
        return names.filter { graph.isDeclaredParticipant($0) && !options.ignore.contains($0) }
    }

    /// The commands for those roles, from the component library.
    package func commands() throws -> [(role: String, command: String)] {
        guard let library else { throw ToolFailure("no component library loaded") }
        return try rolesToStart().map { role in
            (role, try library.command(component: graph.nodes[role]?.component ?? "", role: role, graph: graph))
        }
    }

    /// What a run did, for tests.
    package struct Outcome: Sendable {
        package var started: [String] = []
        package var bindings: [SetupBinding] = []
        /// MQTT edges given to the target participant with `connectinport`.
        package var connected: [SetupBinding] = []
        /// MQTT edges routed by this process (only with `--forever`).
        package var routed: [SetupBinding] = []
        /// Edges left unconnected, with why.
        package var notConnected: [(SetupBinding, String)] = []
    }

    /// Does everything up to (not including) staying alive. `processes` receives the started participants so that
    /// the caller can stop them, on failure too.
    package func run(on transport: any Transport, processes: ParticipantProcesses) async throws -> Outcome {
        // Without broker-kept bindings (MQTT) edges are made by telling participants, or routed by this process.
        let mqtt = !transport.capabilities.contains(.brokerBindings)
        let listener = DiscoveryListener()
        let needDiscovery = options.participants || options.discover || mqtt
        guard needDiscovery else { return try await run(on: transport, processes: processes, listener: listener, mqtt: mqtt) }
        return try await listener.listening(on: transport) {
            try await run(on: transport, processes: processes, listener: listener, mqtt: mqtt)
        }
    }

    private func run(on transport: any Transport, processes: ParticipantProcesses, listener: DiscoveryListener,
                     mqtt: Bool) async throws -> Outcome {
        var outcome = Outcome()
        let deadline = ContinuousClock.now + options.timeout

        if options.participants {
            let commands = try commands()
            for (role, command) in commands {
                try await processes.start(role: role, command: command, broker: transport.broker, forward: options.forward,
                                          shell: options.shell, environment: environment, outliveTool: !options.forever)
            }
            // A participant is ready when its discovery message arrives, not when it prints (msgflo issue 93).
            let missing = try await listener.wait(for: Set(commands.map(\.role)), until: deadline) {
                // A participant may announce and exit (msgflo-register --forever false): only one that exited
                // unheard, with a moment for its last message to arrive, is a failure.
                if let exit = processes.exits.first(where: {
                    listener.definition(role: $0.role) == nil && ContinuousClock.now - $0.at > .seconds(3)
                }) {
                    let said = processes.lastStderrLines(pid: exit.pid)
                    throw ToolFailure("Child '\(exit.command)' (pid=\(exit.pid)) exited with \(exit.signaled ? "signal \(exit.status)" : "status \(exit.status)") before announcing itself"
                                      + (said.isEmpty ? " (nothing on its stderr)" : "; its stderr ended with: " + said.joined(separator: " | ")))
                }
            }
            if !missing.isEmpty {
                throw ToolFailure("setup: no discovery message from \(missing.sorted().joined(separator: ", ")) within \(options.timeout.seconds) s (--timeout)")
            }
            outcome.started = commands.map(\.role)
        }
        // msgflo prints this line in every mode (`[]` when it started none).
        out("Set up participants " + Self.nodeArray(outcome.started))

        // The wiring is the coordinator's Reconciler's plan, made once from what is known of the participants.
        let kind = BrokerKind(transport.capabilities)
        let setupPlan: SetupPlan
        if options.discover {
            let wanted = Set(graph.roles.filter(graph.isDeclaredParticipant))
            let missing = try await listener.wait(for: wanted, until: deadline)
            if !missing.isEmpty {
                throw ToolFailure("setup: Participant discovery timed out: no discovery message from \(missing.sorted().joined(separator: ", ")) within \(options.timeout.seconds) s")
            }
            let definitions = listener.definitions
            setupPlan = SetupPlan(graph, definitions: definitions.values, kind: kind)
            if let failure = setupPlan.failure(definitions) { throw failure }
        } else {
            // Static mode: queues by the role.PORT convention (msgflo's graphBindings).
            let convention = SetupPlan.conventionDefinitions(graph)
            var plan = SetupPlan(graph, definitions: convention, kind: kind)
            if mqtt {
                // Learn who takes connectinport: wait for the edge targets we have not heard from yet, then plan
                // with what they announced.
                let targets = Set(plan.bindings.compactMap { b -> String? in
                    if case .pubsub(_, _, let edge) = b { return edge.tgt.role } else { return nil }
                })
                let unknown = targets.filter { listener.definition(role: $0) == nil }
                if !unknown.isEmpty {
                    err("Waiting up to \(options.timeout.seconds) s for discovery messages from \(unknown.sorted().joined(separator: ", ")) (on MQTT, to learn which participants take connectinport)")
                    _ = try await listener.wait(for: unknown, until: deadline)
                }
                let announced = listener.definitions
                let known = convention.map { announced[$0.role] ?? $0 }
                plan = SetupPlan(graph, definitions: known, kind: kind)
                // An announcement without a port the graph uses: msgflo's message rather than an edge left out.
                if let failure = plan.failure(Dictionary(known.map { ($0.role, $0) }, uniquingKeysWith: { $1 })) { throw failure }
            }
            setupPlan = plan
        }
        let bindings = setupPlan.bindings
        outcome.bindings = bindings
        // Names from the graph (role.PORT) or the announcements go on the wire: refuse a bad one before binding any.
        let wire = WireName.Broker(transport.broker)
        for action in setupPlan.plan.actions {
            guard case .bind(let b, _) = action else { continue }
            do { try b.checkWireNames(wire) } catch { throw ToolFailure("setup: \(error.message)") }
        }

        // Do the plan: bindings at the broker (AMQP), commands to participants (MQTT: connectinport), and on MQTT
        // bindings this process routes, only with --forever.
        for action in setupPlan.plan.actions {
            switch action {
            case .bind(let b, _):
                if !mqtt { try await bind(b, on: transport) }
                else if options.forever && b.kind == .pubsub { try await transport.addBinding(b) }
            case .command(_, let inqueue, let command):
                try await transport.send(toInport: inqueue, command.message)
            case .unbind, .declareInport, .declareOutport, .sendIIP:
                break  // none in a one-shot plan without exported ports or IIPs
            }
        }
        var made: [SetupBinding] = []
        for binding in bindings {
            switch binding {
            case .pubsub(_, _, let edge) where mqtt:
                if setupPlan.plan.edgeWires[edge].map({ !$0.commands.isEmpty }) == true {
                    outcome.connected.append(binding)
                    made.append(binding)
                } else if options.forever {
                    outcome.routed.append(binding)
                    made.append(binding)
                } else {
                    let why = "\(edge.tgt.role) does not take connectinport, so on MQTT this edge needs a running process to route it: add --forever, or run the msgflo coordinator"
                    outcome.notConnected.append((binding, why))
                }
            case .roundRobin where mqtt:
                if !binding.prettyLines.isEmpty {
                    outcome.notConnected.append((binding, "msgflo/RoundRobin needs an AMQP broker"))
                }
            default:
                made.append(binding)
            }
        }
        if !outcome.notConnected.isEmpty {
            // Issue 181: say so rather than exit leaving an edge that carries nothing.
            let edges = outcome.notConnected.map { binding, why in
                binding.prettyLines.map { $0.split(separator: "\t").last!.trimmingCharacters(in: .whitespaces) }
                    .joined(separator: ", ") + " (\(why))"
            }
            throw ToolFailure("not connected: " + edges.joined(separator: "; "))
        }
        for line in SetupBindings.prettyLines(made) { out(line) }
        return outcome
    }

    /// Binds; when the broker has not seen the queue or exchange yet (nothing started), declares them as msgflo's
    /// participants do and tries again.
    func bind(_ binding: Binding, on transport: any Transport) async throws {
        do {
            try await transport.addBinding(binding)
        } catch let error as MsgFloError where error.code == .notFound {
            switch binding.kind {
            case .pubsub, .roundRobin:
                try await transport.declareOutport(binding.src)
                try await transport.declareInport(binding.tgt)
            case .deadLetter:
                try await transport.declareInport(binding.src)
                try await transport.declareInport(binding.tgt)
            }
            try await transport.addBinding(binding)
        }
    }

    /// Node's `console.log` of an array of strings: `[ 'a', 'b' ]`, `[]` when empty, one entry per line when the
    /// single line would pass Node's 80-column break length.
    package static func nodeArray(_ items: [String]) -> String {
        if items.isEmpty { return "[]" }
        let quoted = items.map { s in
            s.contains("'") && !s.contains("\"") ? "\"\(s)\"" : "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        let total = quoted.reduce(0) { $0 + $1.count } + 3 * quoted.count + 11
        if total <= 80 && quoted.count <= 6 {
            return "[ " + quoted.joined(separator: ", ") + " ]"
        }
        return "[\n" + quoted.map { "  " + $0 }.joined(separator: ",\n") + "\n]"
    }
}

/// The last SIGTERM/SIGINT received, set by a C signal handler (an atomic store is async-signal-safe).
private let receivedSignal = Atomic<Int32>(0)

/// Runs `handler` once on the first SIGTERM or SIGINT, instead of dying.
///
/// The signals are caught with a handler rather than ignored (as a dispatch signal source would need): ignored
/// signals stay ignored in the participants this tool starts, which then could not be stopped with SIGTERM.
package final class SignalTrap: Sendable {
    private let watcher: Task<Void, Never>

    package init(_ handler: @escaping @Sendable (Int32) -> Void) {
        receivedSignal.store(0, ordering: .relaxed)
        for sig in [SIGTERM, SIGINT] {
            signal(sig) { s in receivedSignal.store(s, ordering: .relaxed) }
        }
        watcher = Task.detached {
            while !Task.isCancelled {
                let s = receivedSignal.load(ordering: .relaxed)
                if s != 0 {
                    handler(s)
                    return
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Stops watching (the handlers stay installed).
    package func cancel() { watcher.cancel() }
}
