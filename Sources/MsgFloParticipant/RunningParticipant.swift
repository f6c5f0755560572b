import CoreMetrics
import Glibc
import Logging
import MsgFlo
import MsgFloObserve
import Synchronization

extension Participant {
    /// Starts this participant as `role` on a connected transport: declares its queues, consumes its inports and
    /// its command queue, announces itself, delivers the IIPs of `options`, and keeps announcing every
    /// `discoveryPeriod / 2.2` s and after every reconnect, until ``RunningParticipant/stop(cancelSubscriptions:)``.
    public func start(role: String, on transport: any Transport, options: ParticipantOptions = ParticipantOptions(),
                      logger: Logger) async throws -> RunningParticipant {
        try await RunningParticipant.start(self, role: role, transport: transport, options: options, logger: logger)
    }
}

/// A participant at work on a transport. Several may share one transport (and one process).
public final class RunningParticipant: Sendable {
    public let participant: Participant
    /// What it announces (with the queues resolved, `id`, `heartbeat`, `inqueue`, `capabilities`).
    public let definition: ParticipantDefinition
    public let transport: any Transport
    public let options: ParticipantOptions
    let logger: Logger
    /// AMQP: `connectinport` binds the inport's queue to the source exchange (the broker keeps the edge).
    /// MQTT (and any broker without bindings): the inport subscribes the source topic as well.
    private let bindsInports: Bool
    /// The transport gives unsettled deliveries back (AMQP), so a stopping participant may leave them.
    private let redelivers: Bool
    /// Outport id → its own queue (nil: hidden) and its sent counter (with metrics). Fixed at start, read without a
    /// lock on every send: the one dictionary lookup a send already made finds the counter too.
    private let outQueues: [String: OutRoute]
    /// Inport id → its metrics (empty without ``ParticipantOptions/metrics``). A consuming loop looks its port up
    /// once, so the hot path only increments.
    private let inMetrics: [String: InportMetrics]
    /// Reconnects seen (with metrics).
    private let reconnects: CoreMetrics.Counter?

    struct OutRoute: Sendable {
        var queue: String?
        var sent: OutportCounter?
    }
    /// True once any `connectoutport` was taken: only then does a send look at `State.routes` for extra targets.
    private let hasExtraTargets = Atomic<Bool>(false)

    struct PortQueue: Hashable { var port: String; var queue: String }
    struct Route { var queue: String?; var extra: [String] }

    struct State {
        var routes: [String: Route] = [:]
        var connectedInports: Set<PortQueue> = []
        var extraSubscriptions: [PortQueue: Subscription] = [:]
        var subscriptions: [Subscription] = []
        var loops: [Task<Void, Never>] = []
        var background: [Task<Void, Never>] = []
        var named: [String: Task<Void, Never>] = [:]
        var stopping = false
        var inFlight = 0
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        /// Set when a stop gave up waiting for handlers: later drain waits return at once.
        var drainReleased = false
        var announcements = 0
        /// `pause` (coordinator command): deliveries wait before their handler until `resume`.
        var paused = false
        var pauseWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public var context: ParticipantContext { ParticipantContext(runtime: self) }
    public var role: String { definition.role }

    /// How many discovery messages it has sent (for tests and status).
    public var announcements: Int { state.withLock { $0.announcements } }
    /// Handlers running now.
    public var inFlight: Int { state.withLock { $0.inFlight } }
    /// The queues `connectinport` added, per inport.
    public var connectedInports: [String: Set<String>] {
        state.withLock { s in Dictionary(grouping: s.connectedInports, by: \.port).mapValues { Set($0.map(\.queue)) } }
    }
    /// The queues `connectoutport` added, per outport.
    public var connectedOutports: [String: [String]] {
        state.withLock { s in s.routes.filter { !$0.value.extra.isEmpty }.mapValues(\.extra) }
    }

    private init(participant: Participant, definition: ParticipantDefinition, transport: any Transport,
                 options: ParticipantOptions, logger: Logger) {
        self.participant = participant
        self.definition = definition
        self.transport = transport
        self.options = options
        self.bindsInports = transport.capabilities.contains(.brokerBindings)
        self.redelivers = transport.redeliversUnsettled
        let factory = options.metrics
        let role = definition.role
        self.outQueues = Dictionary(definition.outports.map { p in
            (p.id, OutRoute(queue: p.queue, sent: factory.map { OutportCounter($0, role: role, port: p.id) }))
        }, uniquingKeysWith: { a, _ in a })
        if let factory {
            self.inMetrics = Dictionary(definition.inports.map { ($0.id, InportMetrics(factory, role: role, port: $0.id)) },
                                        uniquingKeysWith: { a, _ in a })
            self.reconnects = Counter(label: "msgflo_participant_reconnects_total", dimensions: [("role", role)], factory: factory)
        } else {
            self.inMetrics = [:]
            self.reconnects = nil
        }
        var logger = logger
        logger[metadataKey: "role"] = .string(definition.role)
        self.logger = logger
        state.withLock { s in
            for p in definition.outports { s.routes[p.id] = Route(queue: p.queue, extra: []) }
        }
    }

    /// `<role>-<8 hex digits>`, zero padded (`shout-0f9c36de`), as the discovery docs say.
    static func randomID(role: String) -> String {
        let hex = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(role)-\(String(repeating: "0", count: 8 - hex.count))\(hex)"
    }

    static func start(_ participant: Participant, role: String, transport: any Transport,
                      options: ParticipantOptions, logger: Logger) async throws -> RunningParticipant {
        guard !role.isEmpty else { throw MsgFloError(.invalidArgument, "a participant needs a role") }
        let participant = try participant.naming(options.queues)
        for ports in [participant.inports, participant.outports] {
            var seen: Set<String> = []
            for p in ports where !seen.insert(p.id).inserted {
                throw MsgFloError(.invalidArgument, "\(participant.component) declares port '\(p.id)' twice")
            }
        }
        for port in options.iips.keys where !participant.inports.contains(where: { $0.id == port }) {
            throw MsgFloError(.invalidArgument, "IIP for '\(port)': \(participant.component) has no such inport")
        }
        let id = options.id ?? Self.randomID(role: role)
        let period = options.discoveryPeriod > 0 && options.discoveryPeriod.isFinite ? options.discoveryPeriod : 60
        let definition = participant.definition(role: role, id: id, heartbeat: period,
                                                inqueue: commandQueue(forParticipantID: id))
        // The role and the queues become names on the wire: refuse one the broker cannot take, before any call.
        try definition.checkWireNames(WireName.Broker(transport.broker))
        let running = RunningParticipant(participant: participant, definition: definition, transport: transport,
                                         options: options, logger: logger)
        do {
            try await running.setUp()
        } catch {
            await running.stop()
            throw error
        }
        return running
    }

    // MARK: - Start

    private func setUp() async throws {
        try await transport.declareDiscoveryQueue()
        for port in participant.outports {
            guard let q = definition.outport(port.id)?.queue else { continue }
            try await transport.declareOutport(q, options: port.queueOptions)
        }
        for port in participant.inports {
            guard let q = definition.inport(port.id)?.queue else { continue }
            let pool = options.pool ?? port.poolOption(role: role)
            var queueOptions = port.queueOptions
            queueOptions.pool = pool
            try await transport.declareInport(q, options: queueOptions)
            let sub = try await transport.consume(q, options: ConsumeOptions(prefetch: options.prefetch, pool: pool))
            startLoop(sub, port: port.id)
        }
        if let inqueue = definition.inqueue {
            try await transport.declareInport(inqueue, options: QueueOptions(persistent: false))
            let sub = try await transport.consume(inqueue, options: ConsumeOptions(prefetch: 1))
            let loop = Task { [self] in await self.commandLoop(sub) }
            state.withLock { s in
                s.subscriptions.append(sub)
                s.loops.append(loop)
            }
        }
        // Watch the connection before the first announcement so that no reconnect goes unnoticed.
        let updates = transport.stateUpdates()
        let watcher = Task { [self] in await self.watch(updates) }
        try await announceOrThrow()
        let heartbeat = Task { [self] in await self.heartbeat() }
        var background = [watcher, heartbeat]
        if !options.iips.isEmpty {
            let iips = Array(options.iips)  // in the order given, as msgflo sends them
            if enter() {
                background.append(Task { [self] in
                    for (port, value) in iips {
                        let metrics = self.inMetrics[port]
                        await self.handle(Message(json: value), port: port, delivery: nil, metrics: metrics,
                                          started: metrics == nil ? 0 : MonotonicClock.nanoseconds())
                    }
                    self.leave()
                })
            }
        }
        if let body = participant.body {
            let ctx = context
            background.append(Task { [self] in
                do { try await body(ctx) } catch is CancellationError {
                } catch let e as MsgFloError where e.code == .cancelled {  // a transport call cut short by the stop
                } catch {
                    self.logger.error("\(self.role)(\(self.participant.component)): \(error)")
                }
            })
        }
        state.withLock { $0.background.append(contentsOf: background) }
    }

    // MARK: - Messages

    private func startLoop(_ sub: Subscription, port: String, extra: Bool = false) {
        let executor = options.handlersOnTransportThread ? transport.preferredExecutor : nil
        let loop = Task(executorPreference: executor) { [self] in await self.consumeLoop(sub, port: port) }
        state.withLock { s in
            if !extra { s.subscriptions.append(sub) }
            s.loops.append(loop)
        }
    }

    private func consumeLoop(_ sub: Subscription, port: String) async {
        let limit = options.prefetch
        let metrics = inMetrics[port]
        if limit == 1 {
            // The stream cannot tell whether a delivery was waiting, so the handler's start is read each time.
            for await d in sub {
                let entry = enterDelivery()
                if entry == .stop { continue }
                if entry == .paused, await enterDeliveryWaiting() == nil { continue }
                await handle(d.message, port: port, delivery: d, metrics: metrics,
                             started: metrics == nil ? 0 : MonotonicClock.nanoseconds())
                leave()
            }
            return
        }
        // `limit` workers take deliveries straight from the subscription (the transport hands each to a waiting
        // worker): handlers overlap when they await, and no task is made per message (a child task per message cost
        // more than the relay's whole transport path).
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<limit {
                group.addTask {
                    // With metrics: a delivery that was already waiting when the worker's last handler ended starts
                    // at that handler's end, so a busy worker reads the clock once per message, not twice.
                    var lastEnd: Int?
                    while let (d, waited) = await sub.nextNotingWait() {
                        var paused = false
                        switch self.enterDelivery() {
                        case .go: break
                        case .stop: continue
                        case .paused:
                            guard let waited = await self.enterDeliveryWaiting() else { continue }
                            paused = waited
                        }
                        var started = 0
                        if metrics != nil {
                            started = (waited || paused ? nil : lastEnd) ?? MonotonicClock.nanoseconds()
                        }
                        lastEnd = await self.handle(d.message, port: port, delivery: d, metrics: metrics, started: started)
                        self.leave()
                    }
                }
            }
        }
    }

    /// Handles one message; with `metrics`, counts it and records its handler's time from `started`
    /// (``MonotonicClock`` nanoseconds) and returns when it ended (nil without metrics).
    @discardableResult
    private func handle(_ message: Message, port: String, delivery: Delivery?, metrics: InportMetrics?,
                        started: Int) async -> Int? {
        let ctx = ProcessContext(participant: context, inport: port, queue: delivery?.queue, delivery: delivery,
                                 input: message.properties)
        do {
            try await participant.handler(port, message, ctx)
            ctx.ack()
        } catch {
            metrics?.failed()
            let why = (error as? MsgFloError)?.description ?? String(describing: error)
            logger.warning("\(role)(\(participant.component)) failed on \(port): \(why)")
            if participant.hasErrorPort {
                var payload: JSONObject = ["message": .string(why), "inport": .string(port)]
                if let data = message.data { payload["input"] = data }
                // The error carries the request's correlation id and tracing headers too, but is no answer to it.
                var errorMessage = Message(json: .object(payload))
                errorMessage.properties = message.properties.forwarded
                errorMessage.properties.replyTo = nil
                do { try await send("error", errorMessage) } catch {
                    logger.warning("\(role): could not send on error: \(error)")
                }
            }
            ctx.nack()
        }
        guard let metrics else { return nil }
        let ended = MonotonicClock.nanoseconds()
        metrics.handled(nanoseconds: ended &- started, nacked: ctx.isNacked)
        return ended
    }

    /// Whether the coordinator paused it (`pause`): deliveries wait unhandled, and so unacknowledged, until
    /// `resume`; with the broker's prefetch, the rest wait in the queues. Idempotent.
    public var isPaused: Bool { state.withLock { $0.paused } }

    public func setPaused(_ paused: Bool) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.paused = paused
            if paused { return [] }
            defer { s.pauseWaiters = [] }
            return s.pauseWaiters
        }
        for w in waiters { w.resume() }
        logger.info("\(role): \(paused ? "paused" : "resumed")")
    }

    /// Returns whether it waited.
    @discardableResult
    private func waitWhilePaused() async -> Bool {
        guard state.withLock({ $0.paused && !$0.stopping }) else { return false }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.paused || s.stopping { return true }
                s.pauseWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
        return true
    }

    enum Entry { case go, paused, stop }

    /// Counts a delivery's handler in with one lock: `.go`; `.paused` (nothing counted: wait for the resume
    /// with ``waitWhilePaused()``, then ask again); `.stop` once stopping. Once stopping, deliveries are left
    /// unsettled where the broker gives them back when the consumer goes (AMQP); where it does not (MQTT: what was
    /// read is acknowledged already), they are handled still, the transport having stopped reading.
    private func enterDelivery() -> Entry {
        let handleAnyway = !redelivers
        return state.withLock { s in
            if s.paused && !s.stopping { return .paused }
            if s.stopping && !handleAnyway { return .stop }
            s.inFlight += 1
            return .go
        }
    }

    /// Counts a delivery's handler in once not paused: whether it waited for a resume, or nil when it is not to
    /// be handled. Suspends only while paused.
    private func enterDeliveryWaiting() async -> Bool? {
        var waited = false
        while true {
            switch enterDelivery() {
            case .go: return waited
            case .stop: return nil
            case .paused: waited = await waitWhilePaused() || waited
            }
        }
    }

    /// Counts a handler that is no delivery's (an IIP) in; false once stopping.
    private func enter() -> Bool {
        state.withLock { s in
            if s.stopping { return false }
            s.inFlight += 1
            return true
        }
    }

    private func leave() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.inFlight -= 1
            guard s.inFlight == 0, s.stopping else { return [] }
            defer { s.drainWaiters = [] }
            return s.drainWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Sends straight to `queue` (a reply-to).
    func send(toQueue queue: String, _ message: Message) async throws {
        try await transport.send(toInport: queue, message)
    }

    func send(_ port: String, _ message: Message) async throws {
        guard let route = outQueues[port] else {
            throw MsgFloError(.invalidArgument, "\(participant.component) has no outport '\(port)'")
        }
        if let queue = route.queue { try await transport.send(toOutport: queue, message) }
        route.sent?.increment()
        guard hasExtraTargets.load(ordering: .acquiring) else { return }
        let extra = state.withLock { $0.routes[port]?.extra ?? [] }
        for t in extra { try await transport.send(toInport: t, message) }
    }

    func replaceTask(_ name: String, _ body: (@Sendable (ParticipantContext) async throws -> Void)?) {
        let ctx = context
        let old = state.withLock { s -> Task<Void, Never>? in
            let old = s.named.removeValue(forKey: name)
            if let body, !s.stopping {
                s.named[name] = Task { [logger, role] in
                    do { try await body(ctx) } catch is CancellationError {
                    } catch let e as MsgFloError where e.code == .cancelled {
                    } catch {
                        logger.error("\(role): task \(name): \(error)")
                    }
                }
            }
            return old
        }
        old?.cancel()
    }

    // MARK: - Discovery

    private func announceOrThrow() async throws {
        // Dated (this project's extension): a coordinator never counts it as fresher than this, and on AMQP it
        // expires after one heartbeat period if nobody reads it (Transport.announce).
        var dated = definition
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        dated.timestamp = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        try await transport.announce(dated)
        state.withLock { $0.announcements += 1 }
    }

    private func announce() async {
        do { try await announceOrThrow() } catch {
            logger.warning("\(role): discovery message not sent: \(error)")
        }
    }

    private func heartbeat() async {
        let interval = Duration.seconds((definition.heartbeat ?? 60) / 2.2)
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            await announce()
        }
    }

    private func watch(_ updates: AsyncStream<ConnectionState>) async {
        var lost = false
        for await s in updates {
            if Task.isCancelled { return }
            switch s {
            case .reconnecting: lost = true
            case .connected where lost:
                lost = false
                reconnects?.increment()
                await reapply()
                await announce()
            case .closed: return
            default: break
            }
        }
    }

    /// After a reconnect: the transport has declared, bound and consumed again what it was asked to; edges made
    /// by this participant are asked again (idempotent) so that a transport that lost them gets them back.
    private func reapply() async {
        guard bindsInports else { return }
        let edges = state.withLock { Array($0.connectedInports) }
        for e in edges {
            guard let own = definition.inport(e.port)?.queue else { continue }
            do { try await transport.addBinding(Binding(.pubsub, src: e.queue, tgt: own)) } catch {
                logger.warning("\(role): could not bind \(e.queue) to \(own) again: \(error)")
            }
        }
    }

    // MARK: - Coordinator commands

    private func commandLoop(_ sub: Subscription) async {
        for await d in sub {
            if let c = d.message.json?["command"]?.stringValue, c == "pause" || c == "resume" {
                setPaused(c == "pause")
                d.ack()
                continue
            }
            do {
                try await apply(try CoordinatorCommand(parsing: d.message))
            } catch {
                logger.warning("\(role): coordinator command refused: \(error)")
            }
            d.ack()
        }
    }

    /// Applies a coordinator command. Idempotent: connecting twice, or disconnecting what is not connected, does
    /// nothing.
    public func apply(_ command: CoordinatorCommand) async throws {
        let key = PortQueue(port: command.port, queue: command.queue)
        switch command.command {
        case .connectInport:
            guard let port = definition.inport(command.port) else {
                throw MsgFloError(.notFound, "connectinport: no inport '\(command.port)'")
            }
            let fresh = state.withLock { s in s.stopping ? false : s.connectedInports.insert(key).inserted }
            guard fresh else { return }
            do {
                if bindsInports, let own = port.queue {
                    try await transport.declareOutport(command.queue)
                    try await transport.addBinding(Binding(.pubsub, src: command.queue, tgt: own))
                } else {
                    try await transport.declareInport(command.queue)
                    let sub = try await transport.consume(command.queue, options: ConsumeOptions(prefetch: options.prefetch))
                    state.withLock { $0.extraSubscriptions[key] = sub }
                    startLoop(sub, port: command.port, extra: true)
                }
                logger.info("\(role): inport \(command.port) also takes \(command.queue)")
            } catch {
                _ = state.withLock { $0.connectedInports.remove(key) }
                throw error
            }
        case .disconnectInport:
            let (was, sub) = state.withLock { s in
                (s.connectedInports.remove(key) != nil, s.extraSubscriptions.removeValue(forKey: key))
            }
            guard was else { return }
            if let sub {
                await sub.cancel()
            } else if let own = definition.inport(command.port)?.queue {
                try await transport.removeBinding(Binding(.pubsub, src: command.queue, tgt: own))
            }
            logger.info("\(role): inport \(command.port) no longer takes \(command.queue)")
        case .connectOutport:
            try state.withLock { s throws(MsgFloError) in
                guard var r = s.routes[command.port] else {
                    throw MsgFloError(.notFound, "connectoutport: no outport '\(command.port)'")
                }
                if !r.extra.contains(command.queue) { r.extra.append(command.queue) }
                s.routes[command.port] = r
            }
            hasExtraTargets.store(true, ordering: .releasing)
        case .disconnectOutport:
            state.withLock { s in s.routes[command.port]?.extra.removeAll { $0 == command.queue } }
        }
    }

    // MARK: - Stop

    /// Stops: takes no new message, cancels its own tasks (heartbeat, sources), waits for the handlers in hand to
    /// finish and settle (up to `drainTimeout`), then, when `cancelSubscriptions`, stops consuming (messages taken
    /// but not handled go back to their queue). With `cancelSubscriptions: false` the caller closes the transport,
    /// which gives them back as well. Idempotent.
    public func stop(cancelSubscriptions: Bool = true) async {
        let (tasks, paused) = state.withLock { s -> ([Task<Void, Never>], [CheckedContinuation<Void, Never>]) in
            s.stopping = true
            defer { s.background = []; s.named = [:]; s.pauseWaiters = [] }
            return (s.background + Array(s.named.values), s.pauseWaiters)
        }
        for t in tasks { t.cancel() }
        for w in paused { w.resume() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.drained() }
            group.addTask { [timeout = options.drainTimeout] in try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // Let a drain waiter still waiting (timeout) go.
            let waiters = self.state.withLock { s in
                s.drainReleased = true
                defer { s.drainWaiters = [] }
                return s.drainWaiters
            }
            for w in waiters { w.resume() }
        }
        if cancelSubscriptions {
            let subs = state.withLock { s in
                defer { s.subscriptions = []; s.extraSubscriptions = [:] }
                return s.subscriptions + Array(s.extraSubscriptions.values)
            }
            for sub in subs { await sub.cancel() }
        }
    }

    private func drained() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s in
                if s.inFlight == 0 || s.drainReleased { return true }
                s.drainWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Waits until every consuming loop has ended (after the subscriptions are cancelled or the transport closed).
    public func waitForLoops() async {
        let loops = state.withLock { $0.loops }
        for l in loops { await l.value }
    }
}
