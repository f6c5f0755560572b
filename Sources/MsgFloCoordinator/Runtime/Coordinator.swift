import CoreMetrics
import Foundation
import Logging
import MsgFlo
import Synchronization

/// How the daemon behaves; defaults are msgflo's.
package struct CoordinatorOptions: Sendable {
    /// Seconds of silence after which a participant that declares no heartbeat is lost.
    package var participantTimeout: Double = 600
    /// Seconds a lost participant stays listed before it is forgotten.
    package var forgetAfter: Double = 3600
    /// Starts graph nodes whose component it has (nil: start nothing).
    package var library: ComponentLibrary?
    /// Roles never started.
    package var ignore: Set<String> = []
    /// Run commands as `<shell> -c <command>`.
    package var shell: String?
    package var forwardStdout = true
    package var forwardStderr = true
    /// How often liveness is checked.
    package var tick: Duration = .milliseconds(250)
    /// How soon a failed broker action is tried again.
    package var retry: Duration = .seconds(2)
    /// At most this many broker actions in flight at once while wiring.
    package var concurrency = 64
    /// After sending connectinport/connectoutport, how long to wait before sending IIPs in the same round. The
    /// protocol has no acknowledgement for commands, and on MQTT (QoS 0) an IIP whose result leaves before the
    /// participant downstream has subscribed is lost.
    package var commandSettle: Duration = .milliseconds(500)
    /// Answer `msgflo status` requests on the broker.
    package var answerStatus = true
    /// Where the daemon's metrics go (discovery messages, reconciles, children, broker connection, participants and
    /// edges by state). Nil: none are kept.
    package var metrics: (any MetricsFactory)?
    /// How long changes (graph edits, discovery) pile up before a reconcile pass carries them out together, at the
    /// least; a pass also waits as long as the previous plan took, so planning (which looks at the whole graph)
    /// takes at most about half of the coordinator's time and a burst of edits costs per edit what it changes,
    /// however big the graph.
    package var reconcileBatchDelay: Duration = .milliseconds(2)
    /// `--standby`: one of several coordinators of the network; runs only while elected (``CoordinatorElection``).
    package var standby = false
    /// This instance's name in the election and in `msgflo status`.
    package var instance = CoordinatorElection.instanceName

    package init() {}
}

/// The coordinator's metrics, made once (Prometheus names: docs/observe.md).
struct CoordinatorMetrics: Sendable {
    let discovery: CoreMetrics.Counter
    let rejected: CoreMetrics.Counter
    let reconciles: CoreMetrics.Counter
    let reconcileDuration: CoreMetrics.Timer
    let reconnects: CoreMetrics.Counter
    let connected: Gauge
    let participantsAlive: Gauge
    let participantsLost: Gauge
    let edgesWired: Gauge
    let edgesPending: Gauge
    let nodesPending: Gauge

    init(_ f: any MetricsFactory) {
        discovery = Counter(label: "msgflo_discovery_messages_total", factory: f)
        rejected = Counter(label: "msgflo_discovery_rejected_total", factory: f)
        reconciles = Counter(label: "msgflo_reconcile_runs_total", factory: f)
        reconcileDuration = CoreMetrics.Timer(label: "msgflo_reconcile_duration_seconds", factory: f)
        reconnects = Counter(label: "msgflo_broker_reconnects_total", factory: f)
        connected = Gauge(label: "msgflo_broker_connected", factory: f)
        participantsAlive = Gauge(label: "msgflo_participants", dimensions: [("state", "alive")], factory: f)
        participantsLost = Gauge(label: "msgflo_participants", dimensions: [("state", "lost")], factory: f)
        edgesWired = Gauge(label: "msgflo_edges", dimensions: [("state", "wired")], factory: f)
        edgesPending = Gauge(label: "msgflo_edges", dimensions: [("state", "pending")], factory: f)
        nodesPending = Gauge(label: "msgflo_nodes_pending", factory: f)
    }
}

/// The coordinator: consumes `fbp`, keeps the registry, and keeps the broker matching the desired graph.
///
/// All state lives in this actor; the registry and the reconciler are the pure state machines of `State/`, and this
/// type only feeds them events and carries out their plans on the transport.
package actor Coordinator {
    package let transport: any Transport
    let logger: Logger
    let now: @Sendable () -> Double
    let options: CoordinatorOptions
    /// The component library now (`options.library`, or one a runtime client's component:source replaced).
    var currentLibrary: ComponentLibrary?
    let supervisor: ProcessSupervisor?

    var registry: ParticipantRegistry
    var wiring = WiringState()
    var graph: DesiredGraph
    let reconciler: Reconciler
    var limiter = LogLimiter()
    var plan = WiringPlan()

    var dirty = false
    var reconciling = false
    /// Wake the reconcile and supervise loops, which run as children of ``run()`` (a burst of kicks makes one
    /// wake-up); nil before `run()` and after it ends, when changes are only recorded.
    var reconcileKick: AsyncStream<Void>.Continuation?
    var superviseKick: AsyncStream<Void>.Continuation?
    /// How long the last pass took to plan (the part that grows with the graph).
    var lastPlanDuration: Duration = .zero
    /// Reconcile passes so far (a burst of edits makes one).
    package private(set) var passes = 0
    var retryAt: Double?
    var loggedPending: Set<String> = []
    var started = false
    /// Discovery messages handled (valid or not), counted a batch at a time.
    private let handledCount = Atomic<Int>(0)
    /// Discovery messages handled (valid or not). Read without a hop onto the actor: the benchmark watches it
    /// while the actor works.
    package nonisolated var handled: Int { handledCount.load(ordering: .relaxed) }
    package private(set) var rejected = 0
    /// Announcements ignored because their timestamp was older than their period.
    package private(set) var stale = 0

    // The live runtime's state (Coordinator+Live.swift).
    /// What a live runtime (the FBP WebSocket server) follows: IIPs sent, data tapped, process errors, graph edits.
    package nonisolated let events = CoordinatorEvents()
    /// `network:stop` clears it: IIPs wait, participants that take `pause` are paused.
    var networkStarted = true
    var networkChangedAt: Double = 0
    /// Whether data on edges is tapped (set by the live runtime).
    var tapping = false
    var taps: [String: Tap] = [:]
    let tapTable = TapTable()
    /// Participants told `pause` while the network is stopped.
    var pausedIDs: Set<String> = []
    var superviseDirty = false
    var supervising = false
    let metrics: CoordinatorMetrics?

    package init(transport: any Transport, graph: DesiredGraph = DesiredGraph(), options: CoordinatorOptions = .init(),
                logger: Logger, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.transport = transport
        self.graph = graph
        self.options = options
        self.logger = logger
        self.now = now
        self.registry = ParticipantRegistry(defaultTimeout: options.participantTimeout, forgetAfter: options.forgetAfter)
        self.reconciler = Reconciler(kind: BrokerKind(transport.capabilities))
        let events = self.events
        self.currentLibrary = options.library
        self.supervisor = options.library == nil ? nil : ProcessSupervisor(logger: logger, events: { events.supervisor($0) },
                                                                           metrics: options.metrics)
        self.metrics = options.metrics.map(CoordinatorMetrics.init)
    }

    // MARK: - Running

    /// Runs until cancelled: declares and consumes `fbp`, answers status requests, checks liveness, starts the
    /// graph's participants. On cancellation the children are stopped; the caller closes the transport.
    package func run() async throws {
        try await transport.declareDiscoveryQueue()
        let discovery = try await transport.consume(discoveryQueue, options: ConsumeOptions(prefetch: 1000))
        var statusSub: Subscription?
        if options.answerStatus {
            do {
                try await transport.declareInport(StatusProtocol.queue, options: QueueOptions(persistent: false))
                statusSub = try await transport.consume(StatusProtocol.queue, options: ConsumeOptions(prefetch: 10))
            } catch {
                logger.warning("msgflo status requests will not be answered: \(error)")
            }
        }
        let statusSubscription = statusSub
        let (reconcileKicks, reconcileKick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let (superviseKicks, superviseKick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.reconcileKick = reconcileKick
        self.superviseKick = superviseKick
        started = true
        // The summary first, then one line per change (each start included).
        let specs = supervisor == nil ? [] : participantSpecs()
        let waiting = graph.roles.filter { graph.isParticipant($0) && registry.alive(role: $0).isEmpty }.sorted()
        loggedPending.formUnion(waiting)
        logger.info("\(startupSummary(starting: specs.map(\.role), waiting: waiting))")
        await supervisor?.ensure(specs)
        markDirty()

        await withTaskGroup(of: Void.self) { group in
            // Read, parse and apply on the transport's own thread where it has one: a batch the transport read in
            // one go is parsed there and handed to the actor, which (free) runs it right there too; no thread
            // hand-over, no timer. This ends when the subscription does (transport closed, cancelled), and ends the
            // run with it.
            group.addTask(executorPreference: transport.preferredExecutor) {
                await self.readDiscovery(discovery)
            }
            if let statusSubscription { group.addTask { await self.answerStatus(statusSubscription) } }
            group.addTask { await self.tickLoop() }
            group.addTask { await self.watchConnection() }
            group.addTask { for await _ in reconcileKicks { await self.reconcileLoop() } }
            group.addTask { for await _ in superviseKicks { await self.superviseLoop() } }
            await withTaskCancellationHandler {
                await group.next()
            } onCancel: {
                Task { await discovery.cancel(); await statusSubscription?.cancel() }
            }
            group.cancelAll()
        }
        self.reconcileKick = nil
        self.superviseKick = nil
        reconcileKick.finish()
        superviseKick.finish()
        reconciling = false
        supervising = false
        await discovery.cancel()
        await statusSub?.cancel()
        await cancelTaps()
        await supervisor?.stopAll()
        logger.info("coordinator stopped")
    }

    /// Takes what arrives on `fbp` a batch at a time (what the transport read in one go), parses it off the actor
    /// (only once for bytes seen before: re-announcements) and applies it on the actor, one hop per batch. While
    /// the actor is busy the batch waits and the broker's prefetch bounds what piles up behind it. Never fails;
    /// returns when the subscription ends.
    nonisolated func readDiscovery(_ discovery: Subscription) async {
        var cache = DiscoveryCache(wire: WireName.Broker(transport.broker))
        var results: [Result<ParticipantDefinition, MsgFloError>] = []
        while let batch = await discovery.nextBatch() {
            results.reserveCapacity(batch.count)
            for d in batch { results.append(cache.parse(bytes: d.bytes)) }
            await apply(results, acknowledging: batch)
            results.removeAll(keepingCapacity: true)
        }
    }

    /// A batch of discovery messages into the registry; their deliveries are acknowledged once applied.
    func apply(_ results: [Result<ParticipantDefinition, MsgFloError>], acknowledging deliveries: [Delivery]) {
        handle(results)
        // Applied: only now acknowledged (good or bad alike; a bad message would be just as bad again).
        for d in deliveries { d.ack() }
    }

    /// Discovery messages, parsed or failed (for tests and the benchmark too).
    package func handle(_ results: [Result<ParticipantDefinition, MsgFloError>]) {
        let t = now()
        var changed = false
        // By index: each result is read where it lies, not copied out field by field.
        for i in results.indices { changed = apply(results[i], at: t) || changed }
        handledCount.add(results.count, ordering: .relaxed)
        if changed { markDirty() }
    }

    /// One discovery message into the registry; true when the registry changed beyond last-seen times.
    private func apply(_ r: Result<ParticipantDefinition, MsgFloError>, at t: Double) -> Bool {
        metrics?.discovery.increment()
        switch r {
        case .success(let d):
            let seen = Announcements.seenAt(received: t, d)
            let timeout = d.heartbeat ?? options.participantTimeout
            if t - seen > timeout {
                // Sent longer ago than its own period: it waited in a queue after its sender had (maybe) gone.
                stale += 1
                let line = "stale announcement ignored: \(d.id) (role \(d.role)) sent \(Int(t - seen)) s ago, its period is \(Int(timeout)) s (a ghost left on fbp, or its clock is behind)"
                for l in limiter.admit(line, at: t) { logger.info("\(l)") }
                return false
            }
            var changed = false
            for e in registry.observe(d, at: seen) {
                changed = true
                // A graph node's participant arriving is told by "node X ready: <id>" a moment later.
                if case .added = e, loggedPending.contains(d.role), graph.nodes[d.role] != nil {
                    logger.debug("\(e.logLine)", metadata: e.logMetadata)
                } else {
                    logger.log(level: e.logLevel, "\(e.logLine)", metadata: e.logMetadata)
                }
                switch e {
                case .added, .changed: warnIfComponentDiffers(d)
                default: break
                }
            }
            return changed
        case .failure(let e):
            rejected += 1
            metrics?.rejected.increment()
            for line in limiter.admit("bad message on fbp: \(e.message)", at: t) { logger.warning("\(line)") }
            return false
        }
    }

    package func handle(discovery message: Message) {
        let wire = WireName.Broker(transport.broker)
        handle([Result { () throws(MsgFloError) in
            let d = try Discovery.parse(message)
            try d.checkWireNames(wire)
            return d
        }])
    }

    func tickLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: options.tick)
            tick()
        }
    }

    /// Checks liveness and due retries now (tests call it after moving their clock).
    package func tick() {
        let t = now()
        let events = registry.tick(at: t)
        for e in events {
            logger.log(level: e.logLevel, "\(e.logLine)", metadata: e.logMetadata)
            if case .forgotten(let d) = e { wiring.forget(participant: d.id) }
        }
        for line in limiter.roll(at: t) { logger.warning("\(line)") }
        if !events.isEmpty {
            updateGauges()
            markDirty()
        }
        if let r = retryAt, t >= r { retryAt = nil; markDirty() }
        if let h = plan.iipsHeldUntil, t >= h { plan.iipsHeldUntil = nil; markDirty() }
    }

    func watchConnection() async {
        var wasDown = false
        let up: Int = 1, down: Int = 0
        metrics?.connected.record(transport.state == .connected ? up : down)
        for await s in transport.stateUpdates() {
            metrics?.connected.record(s == .connected ? up : down)
            switch s {
            case .reconnecting:
                if !wasDown { logger.warning("broker connection lost: \(s)") }
                wasDown = true
            case .connected where wasDown:
                metrics?.reconnects.increment()
                wasDown = false
                logger.info("broker connection back; checking the wiring")
                // The transport makes its own declarations and bindings again; a broker restart may still have lost
                // non-durable queues, so everything is made again (idempotent on the broker).
                wiring.invalidateBroker()
                markDirty()
            default: break
            }
        }
    }

    // MARK: - Graph

    /// A participant whose component is not its graph node's is wired all the same (the role decides), with a
    /// warning naming both: a typo in a graph or a participant started under the wrong role shows at once.
    func warnIfComponentDiffers(_ d: ParticipantDefinition) {
        guard let node = graph.nodes[d.role], !Self.sameComponent(node.component, d.component) else { return }
        logger.warning("participant \(d.id) (role \(d.role)) is component \(d.component), but the graph's node \(d.role) is \(node.component); wiring it anyway")
    }

    /// Equal, or equal without a namespace (`ns/Name` and `Name`), as the library's lookup matches them.
    static func sameComponent(_ a: String, _ b: String) -> Bool {
        func base(_ s: String) -> Substring { s.split(separator: "/").last ?? Substring(s) }
        return a == b || base(a) == base(b)
    }

    package func setGraph(_ g: DesiredGraph) async {
        graph = g
        for role in g.roles { for e in registry.alive(role: role) { warnIfComponentDiffers(e.definition) } }
        logger.info("graph \(g.name) loaded: \(Plural.count(g.roles.count, "node")), \(Plural.count(g.edges.count, "edge")), \(Plural.count(g.initials.count, "IIP"))")
        if started { await startParticipants() }
        markDirty()
    }

    package var currentGraph: DesiredGraph { graph }

    /// The specs of the nodes this daemon starts.
    func participantSpecs() -> [ProcessSupervisor.Spec] {
        guard let library = currentLibrary else { return [] }
        var specs: [ProcessSupervisor.Spec] = []
        var skipped: [String] = []
        for role in graph.roles where graph.isParticipant(role) && !options.ignore.contains(role) {
            let component = graph.nodes[role]!.component
            // IIPs go over the broker (to every new process), so #IIPS is '{}' as in msgflo's coordinator.
            guard let command = try? library.command(component: component, role: role) else {
                skipped.append("\(role)(\(component))")
                continue
            }
            var environment = ["MSGFLO_BROKER": transport.broker.unredacted]
            // Where consumers of a queue do not share it (MQTT), the workers behind a msgflo/RoundRobin node share
            // their inport in a pool (our SDK reads it).
            if !transport.capabilities.contains(.sharedQueues) && graph.edges.contains(where: {
                $0.tgt.role == role && graph.nodes[$0.src.role]?.component == DesiredGraph.roundRobin
            }) {
                environment["MSGFLO_POOL"] = role
            }
            specs.append(.init(role: role, command: command, shell: options.shell,
                               environment: environment,
                               forwardStdout: options.forwardStdout, forwardStderr: options.forwardStderr))
        }
        if !skipped.isEmpty {
            logger.info("not started, no component in the library (assumed run elsewhere): \(skipped.joined(separator: ", "))")
        }
        return specs
    }

    func startParticipants() async {
        guard let supervisor else { return }
        await supervisor.ensure(participantSpecs())
    }

    /// The one line the daemon logs once it runs: where, which graph, which library, what it starts and waits for.
    /// What changes later gets one line each (participants, nodes, edges, IIPs).
    func startupSummary(starting: [String], waiting: [String]) -> String {
        var parts = ["msgflo running on \(transport.broker)"]
        if graph.roles.isEmpty && graph.edges.isEmpty {
            parts.append("no graph")
        } else {
            parts.append("graph \(graph.name) (\(Plural.count(graph.roles.count, "node")), \(Plural.count(graph.edges.count, "edge")), \(Plural.count(graph.initials.count, "IIP")))")
        }
        if let library = options.library {
            parts.append("library \(library.config.path ?? "given") (\(Plural.count(library.names.count, "component")))")
        }
        if !starting.isEmpty { parts.append("starting \(Plural.list(starting))") }
        if !waiting.isEmpty { parts.append("pending until their participants appear: \(Plural.list(waiting))") }
        return parts.joined(separator: "; ")
    }

    // MARK: - Reconciling

    func markDirty() {
        dirty = true
        guard !reconciling, started, let reconcileKick else { return }
        reconciling = true
        reconcileKick.yield()
    }

    func reconcileLoop() async {
        while dirty {
            // Let a burst pile up: every change made meanwhile goes into this one pass.
            let wait = max(options.reconcileBatchDelay, lastPlanDuration)
            if wait > .zero { try? await Task.sleep(for: wait) }
            dirty = false
            await reconcileOnce()
        }
        reconciling = false
    }

    func reconcileOnce() async {
        let started = ContinuousClock.now
        defer {
            if let metrics {
                metrics.reconciles.increment()
                let d = (ContinuousClock.now - started).components
                metrics.reconcileDuration.recordNanoseconds(d.seconds * 1_000_000_000 + d.attoseconds / 1_000_000_000)
                updateGauges()
            }
        }
        passes += 1
        let previous = plan
        let clock = ContinuousClock()
        let planStart = clock.now
        var newPlan = reconciler.plan(graph: graph, registry: registry, state: &wiring, now: now())
        lastPlanDuration = clock.now - planStart
        defer {
            // Edge states as they stand once the actions ran (a failed binding keeps its edge pending).
            let t = clock.now
            newPlan.edges = newPlan.settled(with: wiring)
            logTransitions(from: previous, to: newPlan)
            plan = newPlan
            lastPlanDuration += clock.now - t
        }
        if !networkStarted {
            newPlan.actions.removeAll { if case .sendIIP = $0 { true } else { false } }
            await pauseParticipants()
        }
        guard !newPlan.actions.isEmpty else {
            if tapping { await updateTaps(newPlan) }
            return
        }

        // Phases, in order: declarations, undoing, binding, commands, IIPs. Within a phase, concurrently.
        var phases: [[WiringAction]] = [[], [], [], [], []]
        for a in newPlan.actions {
            switch a {
            case .declareInport, .declareOutport: phases[0].append(a)
            case .unbind: phases[1].append(a)
            case .command(_, _, let c) where c.command == .disconnectInport || c.command == .disconnectOutport: phases[1].append(a)
            case .bind: phases[2].append(a)
            case .command: phases[3].append(a)
            case .sendIIP: phases[4].append(a)
            }
        }
        var failures: [(WiringAction, any Error)] = []
        var commandsSent = false
        for (n, phase) in phases.enumerated() {
            // Taps go in once the edges are bound and before anything (commands, IIPs) can set data moving.
            if n == 3 && tapping { await updateTaps(newPlan) }
            if phase.isEmpty { continue }
            if n == 4 && commandsSent { try? await Task.sleep(for: options.commandSettle) }
            if n == 4 { emitIIPs(phase) }
            let results = await execute(phase)
            if n == 3 { commandsSent = results.contains { $0.1 == nil } }
            for (a, error) in results {
                if let error {
                    failures.append((a, error))
                } else {
                    wiring.record(a)
                    switch a {
                    case .unbind(let b): logger.debug("unbound \(b)")
                    case .sendIIP(let p, let role, let port, let q, _): logger.info("IIP sent to \(role).\(port) (\(q)) for \(p)")
                    case .command(let p, _, let c): logger.info("\(c.command.rawValue) sent to \(p): \(c.port) <-> \(c.queue)")
                    default: break
                    }
                }
            }
        }
        if !failures.isEmpty {
            logFailures(failures)
            retryAt = now() + Double(options.retry.components.seconds)
        }
    }

    /// One warning per reconcile pass, however many actions failed (a 1,000-node graph whose queues are missing
    /// would otherwise log a line per edge per retry): the first failure and how many others, through the limiter,
    /// so the same line on every retry is counted, not repeated. Each failure is at debug level.
    func logFailures(_ failures: [(WiringAction, any Error)]) {
        for (a, error) in failures { logger.debug("\(a) failed: \(error)") }
        guard let first = failures.first else { return }
        let (a, error) = first
        let others = failures.count - 1
        let line = others == 0 ? "\(a) failed: \(error)"
            : "\(a) failed: \(error); and \(others) other wiring action\(others == 1 ? "" : "s") (retrying every \(options.retry))"
        for l in limiter.admit(line, at: now()) { logger.warning("\(l)") }
    }

    func execute(_ actions: [WiringAction]) async -> [(WiringAction, (any Error)?)] {
        let transport = self.transport
        return await withTaskGroup(of: (WiringAction, (any Error)?).self) { group in
            var out: [(WiringAction, (any Error)?)] = []
            var inFlight = 0
            for a in actions {
                if inFlight >= options.concurrency, let r = await group.next() { out.append(r); inFlight -= 1 }
                group.addTask {
                    do {
                        switch a {
                        case .declareInport(let q): try await transport.declareInport(q)
                        case .declareOutport(let q): try await transport.declareOutport(q)
                        case .bind(let b, _): try await transport.addBinding(b)
                        case .unbind(let b): try await transport.removeBinding(b)
                        case .command(_, let inqueue, let c): try await transport.send(toInport: inqueue, c.message)
                        case .sendIIP(_, _, _, let q, let data): try await transport.send(toInport: q, Message(json: data))
                        }
                        return (a, nil)
                    } catch {
                        return (a, error)
                    }
                }
                inFlight += 1
            }
            for await r in group { out.append(r) }
            return out
        }
    }

    /// Participants by state, edges by state, pending nodes (with metrics): after each reconcile and liveness change.
    func updateGauges() {
        guard let metrics else { return }
        var alive = 0, lost = 0
        for e in registry.entries { if e.alive { alive += 1 } else { lost += 1 } }
        var wired = 0, pending = 0
        for st in plan.edges.values { if st == .wired { wired += 1 } else { pending += 1 } }
        metrics.participantsAlive.record(alive)
        metrics.participantsLost.record(lost)
        metrics.edgesWired.record(wired)
        metrics.edgesPending.record(pending)
        metrics.nodesPending.record(plan.pendingRoles.count)
    }

    func logTransitions(from old: WiringPlan, to new: WiringPlan) {
        for edge in graph.edges {
            let before = old.edges[edge], after = new.edges[edge]
            guard before != after, let after else { continue }
            switch after {
            case .wired: logger.info("edge bound: \(edge)", metadata: ["edge": .string(edge.description)])
            case .pending(let why):
                // Pending from the start is no change (the start-up line says which nodes wait); a bound edge that
                // goes pending is.
                let level: Logger.Level = before == nil ? .debug : .info
                logger.log(level: level, "edge pending: \(edge) (\(why))", metadata: ["edge": .string(edge.description)])
            }
        }
        for (edge, st) in old.edges where new.edges[edge] == nil && st == .wired {
            logger.info("edge unbound: \(edge) (no longer in the graph)", metadata: ["edge": .string(edge.description)])
        }
        let pending = Set(new.pendingRoles)
        for role in pending.subtracting(loggedPending).sorted() { logger.info("node \(role) pending: no live participant", metadata: ["role": .string(role)]) }
        for role in loggedPending.subtracting(pending).sorted() where graph.nodes[role] != nil {
            let ids = registry.alive(role: role).map(\.definition.id).joined(separator: ", ")
            let components = Set(registry.alive(role: role).map(\.definition.component)).sorted().joined(separator: ", ")
            logger.info("node \(role) ready: \(ids) (\(components))", metadata: ["role": .string(role)])
        }
        loggedPending = pending
    }

    // MARK: - Observing (tests, status)

    package var participants: ParticipantRegistry { registry }
    package var currentPlan: WiringPlan { plan }

    /// What tests and tools look at.
    package struct Observation: Sendable {
        package var registry: ParticipantRegistry
        package var wiring: WiringState
        package var plan: WiringPlan
        package var handled: Int
        package var rejected: Int
        package var idle: Bool
    }

    package var observation: Observation {
        Observation(registry: registry, wiring: wiring, plan: plan, handled: handled, rejected: rejected,
                    idle: !reconciling && !dirty)
    }

    /// Waits until `condition` holds, or `timeout` passes; returns whether it held.
    package func wait(timeout: Duration = .seconds(10), until condition: @Sendable (Observation) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(observation) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(observation)
    }

    /// The network as `msgflo status` shows it.
    package func status(depths: Bool = true) async -> NetworkStatus {
        var rows: [NetworkStatus.Row] = []
        var pendingByRole: [String: [String]] = [:]
        for (edge, st) in plan.edges {
            if case .pending(let why) = st {
                for r in Set([edge.src.role, edge.tgt.role]) { pendingByRole[r, default: []].append("\(edge): \(why)") }
            }
        }
        var roles = graph.roles
        for r in registry.roles.sorted() where graph.nodes[r] == nil { roles.append(r) }
        var queuesToMeasure: [(Int, String)] = []
        for role in roles {
            let entries = registry.participants(role: role)
            rows.append(.init(role: role, component: graph.nodes[role]?.component ?? entries.first?.definition.component ?? "",
                              participants: entries.map { .init(id: $0.definition.id, alive: $0.alive, lastSeen: $0.lastSeen) },
                              pendingEdges: (pendingByRole[role] ?? []).sorted(), queueDepths: [:], inGraph: graph.nodes[role] != nil,
                              inports: entries.first.map { NetworkStatus.ports($0.definition.inports) } ?? [:],
                              outports: entries.first.map { NetworkStatus.ports($0.definition.outports) } ?? [:]))
            if let d = entries.first?.definition, transport.capabilities.contains(.queueDepth) {
                for p in d.inports { if let q = p.queue { queuesToMeasure.append((rows.count - 1, q)) } }
            }
        }
        if depths && queuesToMeasure.count <= 500 {
            let transport = self.transport
            let measured = await withTaskGroup(of: (Int, String, Int?).self) { g in
                for (i, q) in queuesToMeasure { g.addTask { (i, q, try? await transport.queueDepth(q)) } }
                var out: [(Int, String, Int?)] = []
                for await r in g { out.append(r) }
                return out
            }
            for (i, q, d) in measured { if let d { rows[i].queueDepths[q] = d } }
        }
        var s = NetworkStatus(source: "daemon", rows: rows)
        if options.standby { s.active = options.instance }
        return s
    }

    func answerStatus(_ sub: Subscription) async {
        let wire = WireName.Broker(transport.broker)
        for await d in sub {
            d.ack()
            let reply: String
            switch StatusProtocol.replyQueue(d.message, now: now(), broker: wire) {
            case .success(let q?): reply = q
            case .success(nil): continue
            case .failure(let e):
                // A reply name the broker cannot take: refused before it reaches the transport, one line.
                for line in limiter.admit("bad request on \(StatusProtocol.queue): \(e.message)", at: now()) {
                    logger.warning("\(line)")
                }
                continue
            }
            let s = await status()
            do { try await transport.send(toInport: reply, Message(json: s.json)) } catch {
                logger.debug("status reply to \(reply) failed: \(error)")
            }
        }
    }
}

/// Counts with their nouns: "1 edge", "2 edges", and lists that stay short.
enum Plural {
    static func count(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

    static func list(_ names: [String], max: Int = 10) -> String {
        names.count <= max ? names.joined(separator: ", ")
            : names.prefix(max).joined(separator: ", ") + " and \(names.count - max) more"
    }
}
