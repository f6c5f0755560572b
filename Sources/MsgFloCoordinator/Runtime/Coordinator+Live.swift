import Foundation
import Logging
import MsgFlo
import Synchronization

/// What the coordinator reports to a live runtime (the FBP WebSocket server of `msgflo --port`).
package enum CoordinatorEvent: Sendable {
    /// An IIP is about to go to a process of its role (once per process).
    case iip(DesiredGraph.Initial)
    /// A message seen on a graph edge, tapped off the source's outport without taking it from anyone.
    case data(DesiredGraph.Edge, Message)
    /// A message seen leaving an exported outport (its public name).
    case packet(port: String, Message)
    /// A participant the daemon started wrote to stderr or exited without being asked to.
    case processError(role: String, message: String)
    /// A participant the daemon started wrote a line to stdout.
    case output(role: String, line: String)
    /// The desired graph changed (an edit, a clear).
    case graphChanged
}

/// One observer at a time (the live runtime), called on whichever thread the event happens: it must return quickly.
package final class CoordinatorEvents: Sendable {
    /// The observer, in a struct of its own. Kept bare in the Mutex (`Mutex<(@Sendable (Event) -> Void)?>`), every
    /// `withLock` handed the generic `inout Value` through a reabstraction thunk and stored back the closure wrapped
    /// in two more: after ~100,000 tapped messages at 1,000/s, each emit ran a chain of hundreds of thousands of
    /// thunks, and the release daemon died of a stack overflow (SIGSEGV, seen in `Scripts/bench observe daemon`).
    private struct Observer {
        var call: (@Sendable (CoordinatorEvent) -> Void)?
    }

    private let observer = Mutex(Observer())

    package init() {}

    package func observe(_ f: (@Sendable (CoordinatorEvent) -> Void)?) { observer.withLock { $0.call = f } }

    package func emit(_ e: CoordinatorEvent) {
        guard let f = observer.withLock({ $0.call }) else { return }
        f(e)
    }

    func supervisor(_ e: ProcessSupervisor.Event) {
        switch e {
        case .output(let role, let line, let stderr):
            emit(stderr ? .processError(role: role, message: line) : .output(role: role, line: line))
        case .exited(let role, let description):
            emit(.processError(role: role, message: "exited with \(description)"))
        }
    }
}

/// Where tapped data goes: an edge, or an exported outport.
enum TapTarget: Sendable, Hashable {
    case edge(DesiredGraph.Edge)
    case exported(String)
}

/// Which targets each tapped queue feeds, read by the tap tasks.
final class TapTable: Sendable {
    let targets = Mutex<[String: [TapTarget]]>([:])
    func withLock<R: Sendable>(_ f: (inout [String: [TapTarget]]) -> R) -> R { targets.withLock { f(&$0) } }
}

/// A tap on one outport queue.
struct Tap {
    var subscription: Subscription
    var task: Task<Void, Never>
}

/// The pause/resume coordinator commands (this project's extension, docs/runtime.md): a participant that lists
/// `pause` in its capabilities stops consuming its inports on `pause` (messages wait in their queues) and consumes
/// again on `resume`.
package enum FlowControl {
    package static let pause = "pause"
    package static let resume = "resume"

    package static func message(_ command: String, graph: String) -> Message {
        Message(json: ["protocol": "msgflo", "command": .string(command), "payload": ["graph": .string(graph)]])
    }
}

extension Coordinator {
    // MARK: - Live editing

    /// Changes the desired graph on the actor, in place, and returns at once: the reconciler carries the change out
    /// in its next pass (a burst of edits goes into one pass, see ``CoordinatorOptions/reconcileBatchDelay``), and
    /// observers hear `graphChanged`. An edit costs what it changes, not what the graph holds: the graph is neither
    /// copied nor compared.
    ///
    /// `body` may refuse the edit by throwing, and must do so before it changes anything. `nodes`: whether the edit
    /// may add, remove or rename nodes or change their components; then the participants the library knows are
    /// started (or stopped) in the background, once per burst too.
    package func edit<R: Sendable>(nodes: Bool = true, _ body: @Sendable (inout DesiredGraph) throws(MsgFloError) -> R) throws(MsgFloError) -> R {
        let r = try body(&graph)
        if nodes { supervise() }
        markDirty()
        events.emit(.graphChanged)
        return r
    }

    /// Starts and stops the library's participants to match the graph, off the caller's path (stopping one waits
    /// for its exit), one round at a time; a change during a round makes another.
    func supervise() {
        superviseDirty = true
        guard started, !supervising, let superviseKick else { return }
        supervising = true
        superviseKick.yield()
    }

    func superviseLoop() async {
        while superviseDirty {
            // A burst of node edits makes one round (each round looks at every node).
            try? await Task.sleep(for: options.reconcileBatchDelay)
            superviseDirty = false
            await startParticipants()
        }
        supervising = false
    }

    // MARK: - Network control

    package var isNetworkStarted: Bool { networkStarted }

    /// `network:start` and `network:stop`. Stopped: IIPs wait, and participants that take `pause` stop consuming
    /// (their messages wait in their queues); started: they resume and waiting IIPs go out.
    package func setNetworkStarted(_ on: Bool) async {
        networkStarted = on
        networkChangedAt = now()
        if on {
            let ids = pausedIDs
            pausedIDs = []
            let message = FlowControl.message(FlowControl.resume, graph: graph.name)
            for id in ids.sorted() {
                guard let q = registry[id]?.definition.inqueue else { continue }
                do { try await transport.send(toInport: q, message) } catch {
                    logger.warning("resume to \(id) failed: \(error)")
                }
            }
        }
        markDirty()
    }

    /// While the network is stopped: `pause` to every live participant of the graph that takes it and has not had
    /// it yet (newcomers too).
    func pauseParticipants() async {
        let message = FlowControl.message(FlowControl.pause, graph: graph.name)
        for role in graph.roles {
            for e in registry.alive(role: role) where e.definition.capabilities?.contains(FlowControl.pause) == true
                && !pausedIDs.contains(e.definition.id) {
                guard let q = e.definition.inqueue else { continue }
                do {
                    try await transport.send(toInport: q, message)
                    pausedIDs.insert(e.definition.id)
                    logger.info("pause sent to \(e.definition.id)")
                } catch {
                    logger.warning("pause to \(e.definition.id) failed: \(error)")
                }
            }
        }
    }

    /// Seconds since the network was last started or stopped.
    package var networkUptime: Double { max(0, now() - networkChangedAt) }

    /// Whether messages wait in the inport queues of the graph's participants (AMQP); nil where the broker cannot
    /// tell (MQTT).
    package func messagesWaiting() async -> Bool? {
        guard transport.capabilities.contains(.queueDepth) else { return nil }
        var queues: [String] = []
        for role in graph.roles {
            for e in registry.alive(role: role) { queues += e.definition.inports.compactMap(\.queue) }
        }
        for q in queues.prefix(200) {
            if let n = try? await transport.queueDepth(q), n > 0 { return true }
        }
        return false
    }

    /// Sends a message into an exported inport (runtime:packet), as `msgflo-send-message` to its public queue would.
    package func sendToExported(_ port: String, _ message: Message) async throws(MsgFloError) {
        guard let exp = graph.inports.first(where: { $0.name == port }) else {
            throw MsgFloError(.notFound, "no exported inport '\(port)'")
        }
        do { try await transport.send(toOutport: graph.exportedQueue(exp), message) } catch {
            throw MsgFloError(.connectionFailed, "sending into \(port) failed: \(error)")
        }
    }

    /// A participant's definition by role (the most recently seen live one), for the component list.
    package func definitions() -> [ParticipantDefinition] {
        registry.roles.sorted().compactMap { role in registry.participants(role: role).first?.definition }
    }

    // MARK: - Data taps

    /// Taps the data of every wired edge and exported outport from now on (the live runtime's network:data).
    package func enableDataTaps() {
        tapping = true
        markDirty()
    }

    func emitIIPs(_ actions: [WiringAction]) {
        for a in actions {
            guard case .sendIIP(_, let role, let port, _, let data) = a else { continue }
            let tgt = DesiredGraph.Endpoint(role, port)
            let iip = graph.initials.first { $0.tgt == tgt && $0.data == data } ?? DesiredGraph.Initial(data, to: tgt)
            events.emit(.iip(iip))
        }
    }

    /// Makes the taps match the wired edges: one private subscription per source outport queue (AMQP: an exclusive
    /// queue bound to the outport's exchange; MQTT: a subscription to the topic), shared by the edges it feeds.
    func updateTaps(_ plan: WiringPlan) async {
        let clock = ContinuousClock()
        let start = clock.now
        var wanted: [String: [TapTarget]] = [:]
        // The queues the bindings use (Reconciler.queues): the live participants', or while none is alive the
        // first known one's. A wired edge stays tapped while its source is lost for a moment (a missed heartbeat on
        // a loaded machine): a tap dropped and made again is a new private queue, and what passed in between (AMQP:
        // through bindings that stayed) was not seen, so an edge's count fell short of what flowed.
        func add(_ ep: DesiredGraph.Endpoint, _ target: TapTarget) {
            let all = registry.participants(role: ep.role)
            let alive = all.filter(\.alive)
            for e in alive.isEmpty ? Array(all.prefix(1)) : alive {
                if let q = Reconciler.port(e.definition, ep.port, inport: false)?.queue, !wanted[q, default: []].contains(target) {
                    wanted[q, default: []].append(target)
                }
            }
        }
        for edge in graph.edges where plan.edges[edge] == .wired
            && graph.isParticipant(edge.src.role) && graph.isParticipant(edge.tgt.role) {
            add(edge.src, .edge(edge))
        }
        for exp in graph.outports where graph.isParticipant(exp.endpoint.role) { add(exp.endpoint, .exported(exp.name)) }
        tapTable.withLock { $0 = wanted }
        lastPlanDuration += clock.now - start  // it looks at every edge too
        for (q, tap) in taps where wanted[q] == nil {
            taps[q] = nil
            tap.task.cancel()
            await tap.subscription.cancel()
        }
        let table = tapTable
        let events = self.events
        for q in wanted.keys.sorted() where taps[q] == nil {
            do {
                let sub = try await transport.subscribeData(q)
                let task = Task {
                    for await d in sub {
                        for target in table.withLock({ $0[q] ?? [] }) {
                            switch target {
                            case .edge(let e): events.emit(.data(e, d.message))
                            case .exported(let name): events.emit(.packet(port: name, d.message))
                            }
                        }
                    }
                }
                taps[q] = Tap(subscription: sub, task: task)
            } catch {
                for line in limiter.admit("tapping \(q) failed: \(error)", at: now()) { logger.warning("\(line)") }
                retryAt = now() + Double(options.retry.components.seconds)
            }
        }
    }

    func cancelTaps() async {
        let all = taps
        taps = [:]
        for (_, tap) in all {
            tap.task.cancel()
            await tap.subscription.cancel()
        }
    }
}

extension Coordinator {
    /// The component library now (a component file written by `component:source` adds to it).
    package var library: ComponentLibrary? { currentLibrary }

    /// Replaces the library (after a component file was added); nodes it can now start are started.
    package func setLibrary(_ library: ComponentLibrary) {
        currentLibrary = library
        supervise()
    }
}
