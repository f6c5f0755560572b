import CMosquitto
import Foundation
import Logging
import MsgFlo
import MsgFloIOThread
import Synchronization

/// The libmosquitto client of one connection.
///
/// Safety of `@unchecked Sendable`: libmosquitto 2.x is built with thread support and, once
/// `mosquitto_threaded_set(true)` is called, `mosquitto_publish`, `mosquitto_subscribe`, `mosquitto_unsubscribe`
/// and `mosquitto_disconnect` only queue packets under the client's own mutexes and wake its loop, so any thread may
/// call them. Every other call (`connect_async`, `reconnect_async`, `loop`) is made by the connection's loop
/// thread only, and `mosquitto_destroy` by ``MQTTConnection``'s deinit, when no thread can use the handle any more.
struct MosquittoHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

/// One connection to an MQTT broker: a libmosquitto client, the thread that runs its loop (connecting, reading,
/// writing, keepalive, reconnecting with backoff), and the in-process fan-out of incoming messages to consumers,
/// data taps and router edges.
///
/// Threading: the loop thread is ours (not libmosquitto's `loop_start` thread, whose reconnect loop gives up for
/// good on DNS, TLS and protocol errors, counts its delay in whole seconds and reports no failed attempts).
/// libmosquitto calls back on that thread; callbacks copy what they need, take `state`'s lock briefly, yield to
/// streams or resume continuations, and return. Callers on Swift concurrency threads never block on the network:
/// they take the lock, queue a packet, and return (or await a continuation that the loop thread or a timer
/// resumes exactly once).
final class MQTTConnection: Sendable {
    enum Phase: Equatable {
        case idle, connecting
        /// CONNACK accepted; subscriptions sent again, waiting for their SUBACKs before calling it connected.
        case resubscribing
        case connected
        case reconnecting
        case closed
    }

    struct Sink {
        enum Kind {
            /// `prefetch`: a consumer (its deliveries are in hand until settled, see ``MQTTFlowControl``); nil: a tap.
            case stream(DeliveryStream.Continuation, prefetch: Int?)
            /// A router edge: republish every payload unchanged to `target`.
            case route(target: String)
        }

        let id: Int
        let filter: String
        let kind: Kind
    }

    struct Pending {
        let topic: String
        let payload: [UInt8]
        var properties: MessageProperties? = nil
    }

    struct SubscribeWaiter {
        var mids: Set<Int32>
        let continuation: CheckedContinuation<Int, any Error>
    }

    struct State {
        var phase: Phase = .idle
        var reported: ConnectionState = .idle
        /// CONNACK accepted on the current socket: subscribe and publish calls reach the broker.
        var sessionUp = false
        var everConnected = false
        var stopRequested = false
        /// The session was up when the close began: the loop thread ends it with DISCONNECT (``runLoop()``).
        var disconnectOwed = false
        var threadRunning = false
        var connectWaiter: CheckedContinuation<Void, any Error>?
        /// Why the last CONNACK refused us, for the error of `connect()`.
        var refusal: MsgFloError?
        var watchers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
        var nextId = 1

        var sinks: [Int: Sink] = [:]
        /// Index of `sinks` for the message callback: by exact topic, and the wildcard ones.
        var exact: [String: [Sink]] = [:]
        var wildcard: [Sink] = []
        /// Declarations, pools, the broker's subscriptions and their restore after a reconnect.
        var subscriptions = MQTTSubscriptions(persistentSession: false)
        var subscribeWaiters: [Int: SubscribeWaiter] = [:]

        /// Publishes made while the broker was away, sent in order once it is back.
        var pending: [Pending] = []
        var pendingBytes = 0
        /// Messages of a persistent session that arrived before anyone consumed their topic.
        var unclaimed: [(topic: String, message: Message)] = []
        var unclaimedBytes = 0
        /// Dropped from `unclaimed` since the last warning, and when that was (one warning line per 10 s).
        var unclaimedDropped = 0
        var unclaimedWarnedAt: ContinuousClock.Instant? = nil
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        /// Callers of ``nap(_:)``, by id.
        var nappers: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    static let maxPendingMessages = 10_000
    static let maxPendingBytes = 64 << 20
    /// A persistent session's backlog for topics nobody consumes yet (a restarted participant's `connectinport`
    /// topics, until the coordinator sends the command again) waits in memory up to these bounds.
    static let maxUnclaimed = 1_000_000
    static let maxUnclaimedBytes = 64 << 20

    let broker: BrokerURL
    let options: MQTTOptions
    let timeouts: TransportTimeouts
    let logger: Logger
    let handle: MosquittoHandle
    let state = Mutex(State())
    /// The loop thread: woken out of poll for packets queued by other threads, jobs for its executor (consumer
    /// tasks that prefer it run there), and close; it keeps this connection's deadlines.
    let io: IOThread
    var executor: IOThreadExecutor { io.executor }
    /// `State.stopRequested`, readable without the lock: the loop thread checks it after every packet.
    let stopping = Atomic<Bool>(false)
    /// QoS > 0: what bounds the messages in hand (shared by the consuming and the publishing connection).
    let flow: MQTTFlowControl?
    /// QoS > 0, the consuming connection: the connection its routes republish on (publishes are confirmed there).
    let publisher: MQTTConnection?
    /// This is the publishing connection of a QoS > 0 transport: it counts the broker's confirmations into `flow`.
    let isPublisher: Bool
    /// A graceful close is draining: read nothing more.
    let readingPaused = Atomic<Bool>(false)
    /// `phase == .connected && pending.isEmpty`, readable without the lock: while true, `publish` hands a message
    /// straight to libmosquitto (thread-safe in threaded mode) without taking `state`'s lock, which the loop thread
    /// also needs for every incoming message. Written under the lock by ``updateDirect(_:)``.
    let direct = Atomic<Bool>(false)
    private let skipNote = Mutex(SkipNote())

    var persistentSession: Bool { !options.cleanSession }

    init(broker: BrokerURL, options: MQTTOptions, timeouts: TransportTimeouts, logger: Logger,
         flow: MQTTFlowControl? = nil, publisher: MQTTConnection? = nil, isPublisher: Bool = false) throws(MsgFloError) {
        MosquittoLibrary.ensureInitialized()
        self.flow = flow
        self.publisher = publisher
        self.isPublisher = isPublisher
        self.broker = broker
        self.options = options
        self.timeouts = timeouts
        self.logger = logger
        let id = options.effectiveClientId(for: broker)
        do {
            io = try IOThread(name: "msgflo-mqtt")
        } catch {
            throw MsgFloError(.connectionFailed, "MQTT client for \(broker) could not be created: \(error)")
        }
        guard let raw = mosquitto_new(id, options.cleanSession, nil) else {
            throw MsgFloError(.invalidArgument, "MQTT client for \(broker) could not be created (client id or memory)")
        }
        handle = MosquittoHandle(raw: raw)
        // The callbacks find this object through the userdata pointer. It is unretained: the loop thread keeps the
        // object alive while it runs, and callbacks only run on that thread.
        mosquitto_user_data_set(raw, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_threaded_set(raw, true)
        do {
            try configure(raw)
        } catch {
            mosquitto_destroy(raw)
            throw error
        }
        state.withLock { $0.subscriptions = MQTTSubscriptions(persistentSession: !options.cleanSession) }
    }

    deinit {
        mosquitto_destroy(handle.raw)
    }

    /// Wakes the loop thread (when called from another thread) after queueing a packet or a change for it.
    func kick() {
        guard !io.isCurrent else { return }
        io.wake()
    }

    private func check(_ rc: Int32, _ what: String) throws(MsgFloError) {
        if rc != MosquittoStatus.success { throw MosquittoStatus.error(rc, what, broker: broker, errno: errno) }
    }

    private func configure(_ raw: OpaquePointer) throws(MsgFloError) {
        if let user = broker.user {
            try check(mosquitto_username_pw_set(raw, user, broker.password), "login setup")
        }
        if broker.scheme.usesTLS {
            let caPath = options.caFile == nil && options.caPath == nil ? "/etc/ssl/certs" : options.caPath
            try check(mosquitto_tls_set(raw, options.caFile, caPath, options.certFile, options.keyFile, nil),
                      "TLS setup (cafile \(options.caFile ?? "-"))")
            if options.insecure {
                try check(mosquitto_tls_opts_set(raw, 0, nil, nil), "TLS setup")
                try check(mosquitto_tls_insecure_set(raw, true), "TLS setup")
            }
        }
        mosquitto_connect_callback_set(raw) { _, userdata, rc in
            Unmanaged<MQTTConnection>.fromOpaque(userdata!).takeUnretainedValue().onConnect(rc)
        }
        mosquitto_disconnect_callback_set(raw) { _, userdata, _ in
            Unmanaged<MQTTConnection>.fromOpaque(userdata!).takeUnretainedValue().onDisconnect()
        }
        mosquitto_subscribe_callback_set(raw) { _, userdata, mid, _, _ in
            Unmanaged<MQTTConnection>.fromOpaque(userdata!).takeUnretainedValue().onSubscribed(mid)
        }
        if options.protocolVersion == 5 {
            try check(mosquitto_int_option(raw, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5), "MQTT 5 setup")
            mosquitto_message_v5_callback_set(raw) { _, userdata, message, props in
                Unmanaged<MQTTConnection>.fromOpaque(userdata!).takeUnretainedValue().onMessage(message!, props)
            }
        } else {
            mosquitto_message_callback_set(raw) { _, userdata, message in
                Unmanaged<MQTTConnection>.fromOpaque(userdata!).takeUnretainedValue().onMessage(message!, nil)
            }
        }
        if isPublisher {
            // PUBACK (QoS 1) or PUBCOMP (QoS 2) of one of our publishes; they come in the order they were sent.
            mosquitto_publish_callback_set(raw) { _, userdata, _ in
                Unmanaged<MQTTConnection>.fromOpaque(userdata!).takeUnretainedValue().flow?.publishConfirmed()
            }
        }
    }

    // MARK: state reporting

    var connectionState: ConnectionState { state.withLock { $0.reported } }

    func stateUpdates() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream()
        let finished = state.withLock { s -> Bool in
            continuation.yield(s.reported)
            if s.reported == .closed { return true }
            let id = s.nextId
            s.nextId += 1
            s.watchers[id] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
            }
            return false
        }
        if finished { continuation.finish() }
        return stream
    }

    /// Records and announces a new state. Called with the lock held; yields only (finishing happens in `close`).
    private func report(_ s: inout State, _ new: ConnectionState) {
        guard s.reported != new else { return }
        s.reported = new
        for w in s.watchers.values { w.yield(new) }
        switch new {
        case .connected: logger.info("MQTT connected to \(broker)")
        case .reconnecting(let attempt, let reason):
            logger.warning("MQTT \(broker) reconnecting (attempt \(attempt)): \(reason)")
        default: break
        }
    }

    /// Keeps ``direct`` in step with the phase and the pending buffer. Called with the lock held after they change.
    private func updateDirect(_ s: State) {
        direct.store(s.phase == .connected && s.pending.isEmpty && s.sessionUp, ordering: .releasing)
    }

    // MARK: connect and close

    func connect() async throws {
        let start = try state.withLock { s throws(MsgFloError) -> Bool in
            switch s.phase {
            case .idle:
                s.phase = .connecting
                return true
            case .closed: throw MsgFloError(.closed, "MQTT transport to \(broker) is closed")
            case .connecting: throw MsgFloError(.invalidArgument, "MQTT transport to \(broker) is already connecting")
            default: return false
            }
        }
        guard start else { return }
        let timeout = timeouts.connect
        let cancelled = MsgFloError(.cancelled, "connecting to MQTT broker \(broker) was cancelled; the transport is closed")
        // A cancelled connect closes the connection at once (the loop thread ends after its current attempt).
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let alreadyCancelled = state.withLock { s -> Bool in
                    s.connectWaiter = continuation
                    // Under the lock the cancellation handler takes too: cancelled before this, it found no waiter.
                    if Task.isCancelled { return true }
                    s.threadRunning = true
                    return false
                }
                if alreadyCancelled {
                    shutdown(connectError: cancelled)
                    return
                }
                io.schedule(after: timeout) { [weak self] in
                    guard let self else { return }
                    self.shutdown(connectError: MsgFloError(
                        .timeout, "MQTT broker \(self.broker) did not accept a connection within \(timeout.inSeconds) s"))
                }
                do {
                    try io.start { [self] in runLoop() }
                } catch {
                    state.withLock { $0.threadRunning = false }
                    shutdown(connectError: MsgFloError(.connectionFailed, "MQTT client for \(broker): \(error)"))
                }
            }
        } onCancel: {
            shutdown(connectError: cancelled)
        }
    }

    /// Closes for good: the connect waiter (if any) fails with `connectError` or `.closed`, other waiters fail,
    /// every stream ends, the loop thread sends DISCONNECT and stops.
    func shutdown(connectError: MsgFloError? = nil) {
        let closedError = MsgFloError(.closed, "MQTT transport to \(broker) is closed")
        let taken = state.withLock { s -> (CheckedContinuation<Void, any Error>?, [SubscribeWaiter], [Sink],
                                           [AsyncStream<ConnectionState>.Continuation])? in
            guard s.phase != .closed else { return nil }
            // A connect timeout after the connection is up means nothing.
            if connectError != nil && s.connectWaiter == nil { return nil }
            s.phase = .closed
            s.stopRequested = true
            s.disconnectOwed = s.sessionUp
            stopping.store(true, ordering: .releasing)
            s.sessionUp = false
            updateDirect(s)
            report(&s, .closed)
            let waiter = s.connectWaiter
            s.connectWaiter = nil
            let subs = Array(s.subscribeWaiters.values)
            s.subscribeWaiters = [:]
            let sinks = Array(s.sinks.values)
            s.sinks = [:]
            s.exact = [:]
            s.wildcard = []
            s.pending = []
            s.pendingBytes = 0
            s.unclaimed = []
            s.unclaimedBytes = 0
            let watchers = Array(s.watchers.values)
            s.watchers = [:]
            return (waiter, subs, sinks, watchers)
        }
        guard let (waiter, subs, sinks, watchers) = taken else { return }
        // The loop thread sends DISCONNECT when the session was up (a persistent session then stays on the broker)
        // and waits for the broker to end the connection: see ``runLoop()``.
        io.wake()
        waiter?.resume(throwing: connectError ?? closedError)
        for w in subs { w.continuation.resume(throwing: closedError) }
        for sink in sinks {
            if case .stream(let c, _) = sink.kind { c.finish() }
        }
        for w in watchers { w.finish() }
    }

    /// Fails the calls waiting for a SUBACK with `.closed`, at once (a draining close comes before ``shutdown(connectError:)``).
    func failWaiters() {
        let waiters = state.withLock { s in
            defer { s.subscribeWaiters = [:] }
            return Array(s.subscribeWaiters.values)
        }
        let closed = MsgFloError(.closed, "MQTT transport to \(broker) is closed")
        for w in waiters { w.continuation.resume(throwing: closed) }
    }

    /// Closes and waits (a bounded time) for the loop thread to send DISCONNECT and stop.
    func close() async {
        shutdown()
        let deadline = timeouts.operation
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let running = state.withLock { s -> Bool in
                if s.threadRunning { s.exitWaiters.append(continuation) }
                return s.threadRunning
            }
            if !running { continuation.resume(); return }
            io.schedule(after: deadline) { [weak self] in self?.releaseExitWaiters() }
        }
    }

    /// Waits `duration` on the loop thread's timer whether or not the calling task is cancelled (a close's drain
    /// runs to its end, and `Task.sleep` in a cancelled task would return at once and spin); at once when the loop
    /// thread is not running, early when it ends.
    func nap(_ duration: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLock { s -> Int? in
                guard s.threadRunning else { return nil }
                let id = s.nextId
                s.nextId += 1
                s.nappers[id] = continuation
                return id
            }
            guard let id else { return continuation.resume() }
            let wake: @Sendable () -> Void = { [weak self] in
                self?.state.withLock { $0.nappers.removeValue(forKey: id) }?.resume()
            }
            if io.schedule(after: duration, wake) == nil { wake() }
        }
    }

    private func releaseExitWaiters() {
        let waiters = state.withLock { s in
            defer { s.exitWaiters = [] }
            return s.exitWaiters
        }
        for w in waiters { w.resume() }
    }

    // MARK: the loop thread

    private func runLoop() {
        let raw = handle.raw
        var attempt = 0
        var backoff = Backoff()
        var first = true
        // The URL's addresses: the first that answers, then the next one after each failure (one address: libmosquitto's
        // reconnect to it, as ever).
        let endpoints = broker.connectionOrder()
        var index = 0
        var firstFailures: [MsgFloError] = []
        while !state.withLock({ $0.stopRequested }) {
            // Plain TCP connects without blocking (close() can interrupt a connect to a silent host). libmosquitto
            // 2.0's non-blocking connect never completes a TLS handshake, so TLS connects block this thread (the
            // caller's connect timeout still holds; a late outcome is discarded).
            let tls = broker.scheme.usesTLS
            let ep = endpoints[index]
            let rc = first || endpoints.count > 1
                ? (tls ? mosquitto_connect(raw, ep.host, Int32(ep.port), options.keepalive)
                       : mosquitto_connect_async(raw, ep.host, Int32(ep.port), options.keepalive))
                : (tls ? mosquitto_reconnect(raw) : mosquitto_reconnect_async(raw))
            var savedErrno = errno
            first = false
            var failure = rc
            var wasUp = false
            if rc == MosquittoStatus.success {
                var ending: Ending? = nil
                while true {
                    if ending == nil && stopping.load(ordering: .acquiring) {
                        // close(): say goodbye the orderly way if the session is up; else DISCONNECT if it can be
                        // written at once (no session to keep: nothing to wait for), and stop.
                        guard let e = beginEnding(raw) else {
                            _ = mosquitto_disconnect(raw)
                            if mosquitto_want_write(raw) { _ = mosquitto_loop_write(raw, 1) }
                            break
                        }
                        ending = e
                    }
                    let lrc = turn(raw)
                    savedErrno = errno
                    if lrc != MosquittoStatus.success { failure = lrc; break }
                    // DISCONNECT not written in time (the broker does not read): stop anyway.
                    if let ending, ContinuousClock.now >= ending.deadline { break }
                }
                if let ending { finish(ending, raw) }
                flushOutbox()
                wasUp = state.withLock { s in
                    defer {
                        s.sessionUp = false
                        updateDirect(s)
                    }
                    return s.sessionUp || s.phase == .connected
                }
            }
            let (stop, refusal, everConnected) = state.withLock { s in
                (s.stopRequested, s.refusal, s.everConnected)
            }
            if stop { break }
            var error = refusal ?? MosquittoStatus.error(failure, "connection", broker: broker, errno: savedErrno)
            if !everConnected && refusal == nil && rc == MosquittoStatus.success
                && failure == Int32(MOSQ_ERR_CONN_LOST.rawValue) && !broker.scheme.usesTLS {
                // Connected, then closed without a CONNACK: not an MQTT broker on that port, typically a TLS one.
                error = MsgFloError(.wrongProtocol, "cannot connect to \(broker): the server closed the connection "
                                    + "before answering CONNECT (a TLS port? use mqtts:// for it; or not an MQTT port)")
            }
            if !everConnected {
                // The first connection fails fast with the reason (after every address was tried once); only an
                // established connection is retried.
                firstFailures.append(error)
                if index + 1 < endpoints.count {
                    index += 1
                    continue
                }
                shutdown(connectError: firstFailures.count == 1 ? error : MsgFloError(
                    error.code, "no address of \(broker) answers: " + zip(endpoints, firstFailures).map {
                        "\($0): \($1.message)" }.joined(separator: "; ")))
                break
            }
            if endpoints.count > 1 {
                index = (index + 1) % endpoints.count
                error = MsgFloError(error.code, "\(error.message) (\(ep); next: \(endpoints[index]))")
            }
            if wasUp {
                attempt = 0
                backoff.reset()
            }
            attempt += 1
            state.withLock { s in
                guard s.phase != .closed else { return }
                s.phase = .reconnecting
                s.refusal = nil
                updateDirect(s)
                report(&s, .reconnecting(attempt: attempt, reason: error.message))
            }
            // The backoff, running the executor's jobs meanwhile; a close ends it early.
            _ = io.pause(for: backoff.next()) { stopping.load(ordering: .acquiring) }
        }
        // Once this returns, the executor's jobs run on the global executor: nothing that preferred it is left behind.
        let nappers = state.withLock { s in
            s.threadRunning = false
            defer { s.nappers = [:] }
            return Array(s.nappers.values)
        }
        for n in nappers { n.resume() }
        releaseExitWaiters()
    }

    /// How long a close waits for its DISCONNECT to be written and for the broker to end the connection after it
    /// (see ``beginEnding(_:)``). Past it the socket is closed anyway: at QoS > 0 the broker may then miss the last
    /// PUBACKs and deliver those messages again (duplicates, never a loss).
    static let disconnectDeadline: Duration = .seconds(5)

    /// A graceful end in progress: DISCONNECT queued, a second descriptor of the socket kept open, the deadline.
    struct Ending {
        let socket: Int32
        let deadline: ContinuousClock.Instant
    }

    /// Begins the end of a connection whose session is up: keeps a duplicate of the socket and queues DISCONNECT
    /// (behind every packet already queued, PUBACKs included). libmosquitto closes its descriptor as soon as the
    /// DISCONNECT is written; if that were the socket's last descriptor, the kernel would answer the messages the
    /// broker sent meanwhile, which a closing connection does not read, with a reset, and a busy broker that has not
    /// read our last PUBACKs yet drops them with the connection (and delivers those messages again, to the next
    /// process of the session). The duplicate lets ``finish(_:_:)`` close it the orderly way. Nil when the session
    /// is not up (nothing to say goodbye to). Loop thread only.
    private func beginEnding(_ raw: OpaquePointer) -> Ending? {
        guard state.withLock({ $0.disconnectOwed }) else { return nil }
        let sock = mosquitto_socket(raw)
        guard sock >= 0 else { return nil }
        let kept = dup(sock)
        _ = mosquitto_disconnect(raw)
        return Ending(socket: kept, deadline: .now + Self.disconnectDeadline)
    }

    /// Ends the connection the orderly way once libmosquitto wrote the DISCONNECT (and closed its descriptor): no
    /// more writing (FIN), then what the broker still sends is read and discarded (messages never acknowledged: the
    /// session keeps them) until it closes its end, which it does after reading everything we sent; then closes.
    /// Bounded by the ending's deadline. Loop thread only.
    private func finish(_ ending: Ending, _ raw: OpaquePointer) {
        guard ending.socket >= 0 else { return }
        defer { closeDescriptor(ending.socket) }
        // libmosquitto still holds the socket: the DISCONNECT was not written in time.
        guard mosquitto_socket(raw) < 0 else {
            logger.warning("MQTT \(broker): DISCONNECT not written within \(Self.disconnectDeadline); closing anyway")
            return
        }
        endWriting(ending.socket)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let left = ending.deadline - .now
            guard left > .zero else {
                logger.warning("MQTT \(broker): the broker did not end the connection within \(Self.disconnectDeadline) after DISCONNECT; closing anyway")
                return
            }
            let ready = io.wait(socket: ending.socket, events: Int16(POLLIN), limit: left)
            executor.runPending()
            if ready.error != 0 { return }
            guard ready.socket != 0 else { continue }
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(ending.socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { continue }
                if n == 0 { return }  // the broker closed its end
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                return  // reset: nothing more to wait for
            }
        }
    }

    /// One turn of the loop (what `mosquitto_loop` does, with our eventfd in the poll set and the executor's jobs
    /// run between reading and writing): wait for the socket or a wake-up; read what is there, up to a batch of
    /// messages; give the messages to their streams; run the jobs (consumers on this thread handle them and queue
    /// their replies); write what is queued; keepalive.
    private func turn(_ raw: OpaquePointer) -> Int32 {
        let sock = mosquitto_socket(raw)
        guard sock >= 0 else { return MosquittoStatus.noConnection }
        // As many messages in hand as the consumers allow (or draining for a close): leave the socket unread, so the
        // broker keeps what it sent us unacknowledged, until some leave the hand (the wake-up fd says so).
        let reading = !mustNotRead && !stopping.load(ordering: .acquiring)
        if !reading, let flow, !readingPaused.load(ordering: .acquiring) {
            // Held for long: say so (every 10 s), with what holds it.
            let now = ContinuousClock.now
            if let since = heldSince {
                if now - since > .seconds(10) {
                    logger.warning("MQTT \(broker): not reading for \(Int((now - since).inSeconds)) s: \(flow.describe)")
                    heldSince = now
                }
            } else {
                heldSince = now
            }
        } else {
            heldSince = nil
        }
        let ready = io.wait(socket: sock, events: (reading ? Int16(POLLIN) : 0) | (mosquitto_want_write(raw) ? Int16(POLLOUT) : 0),
                            limit: .seconds(1))
        if ready.error != 0 {
            errno = ready.error
            return MosquittoStatus.errno
        }
        if reading && ready.socket & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
            // libmosquitto reads one packet a call (QoS 0); go on while messages keep coming, up to a batch.
            var calls = 0
            while true {
                let before = received
                let rc = mosquitto_loop_read(raw, 1)
                if rc != MosquittoStatus.success {
                    flushOutbox()
                    return rc
                }
                calls += 1
                if received == before || calls >= Self.maxBatch || mustNotRead { break }
            }
        }
        flushOutbox()
        executor.runPending()
        if mosquitto_want_write(raw) {
            let rc = mosquitto_loop_write(raw, 1)
            if rc != MosquittoStatus.success { return rc }
        }
        return mosquitto_loop_misc(raw)
    }

    // MARK: callbacks (loop thread)

    /// Deliveries read from the socket and not yet given to their streams. Loop thread only.
    private nonisolated(unsafe) var outbox: [(DeliveryStream.Continuation, Delivery)] = []
    /// Since when the reading has been held by the flow control. Loop thread only.
    private nonisolated(unsafe) var heldSince: ContinuousClock.Instant? = nil
    /// Messages read so far. Loop thread only.
    private nonisolated(unsafe) var received = 0
    static let maxBatch = 256

    /// The consumers hold as much as their prefetch allows, or a close is draining.
    private var mustNotRead: Bool {
        guard let flow, !isPublisher else { return false }
        return flow.isFull || readingPaused.load(ordering: .acquiring)
    }

    /// A graceful close begins: read no more messages (those in hand are finished meanwhile).
    func pauseReading() {
        readingPaused.store(true, ordering: .releasing)
        kick()
    }

    private func flushOutbox() {
        guard !outbox.isEmpty else { return }
        DeliveryStream.yieldRuns(outbox)
        outbox.removeAll(keepingCapacity: true)
    }

    private func onConnect(_ rc: Int32) {
        if rc != 0 {
            state.withLock { $0.refusal = MosquittoStatus.refused(rc, broker: broker) }
            return
        }
        state.withLock { s in
            guard s.phase != .closed else { return }
            s.sessionUp = true
            s.refusal = nil
            s.phase = .resubscribing
            updateDirect(s)
            var mids: Set<Int32> = []
            for filter in s.subscriptions.restorePlan() {
                var mid: Int32 = 0
                if mosquitto_subscribe(handle.raw, &mid, filter, options.qos) == MosquittoStatus.success {
                    mids.insert(mid)
                }
            }
            if s.subscriptions.restoreSent(mids) { finishConnected(&s) }
        }
    }

    private func onDisconnect() {
        state.withLock { s in
            s.sessionUp = false
            s.subscriptions.connectionLost()
            updateDirect(s)
        }
    }

    private func onSubscribed(_ mid: Int32) {
        let done = state.withLock { s -> [(Int, CheckedContinuation<Int, any Error>)] in
            if s.subscriptions.subacked(mid), s.phase == .resubscribing {
                finishConnected(&s)
            }
            var done: [(Int, CheckedContinuation<Int, any Error>)] = []
            for (id, var w) in s.subscribeWaiters where w.mids.contains(mid) {
                w.mids.remove(mid)
                if w.mids.isEmpty {
                    s.subscribeWaiters.removeValue(forKey: id)
                    done.append((id, w.continuation))
                } else {
                    s.subscribeWaiters[id] = w
                }
            }
            return done
        }
        for (id, c) in done { c.resume(returning: id) }
    }

    /// Everything is subscribed again: send what waited, then say so. Lock held.
    private func finishConnected(_ s: inout State) {
        var sent = 0
        for p in s.pending {
            let rc = mosquittoPublish(p.topic, p.payload, p.properties)
            if rc == MosquittoStatus.noConnection { break }
            if rc != MosquittoStatus.success {
                logger.error("\(MosquittoStatus.error(rc, "publish to '\(p.topic)'", broker: broker))")
                if isPublisher { flow?.publishAbandoned() }
            }
            sent += 1
        }
        if sent > 0 {
            logger.info("MQTT \(broker): sent \(sent) messages that waited for the connection")
            s.pending.removeFirst(sent)
            s.pendingBytes = s.pending.reduce(0) { $0 + $1.payload.count }
        }
        s.phase = .connected
        s.everConnected = true
        updateDirect(s)
        report(&s, .connected)
        if let waiter = s.connectWaiter {
            s.connectWaiter = nil
            waiter.resume()
        }
    }

    private func onMessage(_ m: UnsafePointer<mosquitto_message>, _ props: OpaquePointer?) {
        received &+= 1
        let topic = String(cString: m.pointee.topic)
        let length = Int(m.pointee.payloadlen)
        let payload = m.pointee.payload
        var properties = MessageProperties()
        if let props {
            var skipped = 0
            properties = MQTTProperties.decode(props, skipped: &skipped)
            if skipped > 0 { noteSkippedProperties(skipped) }
        }
        // The sinks are read under the lock, and served after it: a stream's yield may wake a consumer thread, and a
        // route publishes; neither should hold up a publisher waiting for the lock. Only this thread calls here, so
        // the order of messages is kept.
        let (exact, wildcard) = state.withLock { s -> ([Sink], [Sink]) in
            let exact = s.exact[topic] ?? []
            let wildcard = s.wildcard
            if persistentSession && exact.isEmpty && !wildcard.contains(where: { TopicFilter.matches($0.filter, topic) }) {
                var dropped = 0
                while dropped < s.unclaimed.count
                        && (s.unclaimed.count - dropped >= Self.maxUnclaimed
                            || s.unclaimedBytes + length > Self.maxUnclaimedBytes) {
                    s.unclaimedBytes -= s.unclaimed[dropped].message.count
                    dropped += 1
                }
                if dropped > 0 {
                    s.unclaimed.removeFirst(dropped)
                    s.unclaimedDropped += dropped
                    let now = ContinuousClock.now
                    if s.unclaimedWarnedAt.map({ now - $0 > .seconds(10) }) ?? true {
                        logger.warning("MQTT \(broker): \(s.unclaimedDropped) messages dropped: more than \(Self.maxUnclaimedBytes >> 20) MiB or \(Self.maxUnclaimed) messages wait for topics nobody consumes yet")
                        s.unclaimedDropped = 0
                        s.unclaimedWarnedAt = now
                    }
                }
                s.unclaimed.append((topic, Message(bytes: Array(UnsafeRawBufferPointer(start: payload, count: length)),
                                                   properties: properties)))
                s.unclaimedBytes += length
            }
            return (exact, wildcard)
        }
        var message: Message? = nil
        func deliver(_ sink: Sink) {
            switch sink.kind {
            case .stream(let c, let prefetch):
                if message == nil {
                    message = Message(bytes: length == 0 ? [] : Array(UnsafeRawBufferPointer(start: payload, count: length)),
                                      properties: properties)
                }
                if prefetch != nil, let flow {
                    let tag = flow.take(sink: sink.id)
                    outbox.append((c, Delivery(message: message!, queue: topic, tag: tag, settler: flow)))
                } else {
                    outbox.append((c, Delivery(message: message!, queue: topic)))
                }
            case .route(let target):
                if let publisher, let flow {
                    // Republished on the publishing connection; in hand until the broker confirms it.
                    let bytes = length == 0 ? [] : Array(UnsafeRawBufferPointer(start: payload, count: length))
                    do { try publisher.publish(target, bytes, properties: properties.isEmpty ? nil : properties) } catch {
                        logger.error("MQTT \(broker): forward \(topic) -> \(target): \(error)")
                        return
                    }
                    flow.routed()
                    return
                }
                let rc = properties.isEmpty
                    ? mosquitto_publish(handle.raw, nil, target, Int32(length), payload, options.qos, false)
                    : mosquittoPublish(target, Array(UnsafeRawBufferPointer(start: payload, count: length)), properties)
                if rc != MosquittoStatus.success {
                    logger.error("\(MosquittoStatus.error(rc, "forward \(topic) -> \(target)", broker: broker))")
                }
            }
        }
        for sink in exact { deliver(sink) }
        for sink in wildcard where TopicFilter.matches(sink.filter, topic) { deliver(sink) }
    }

    // MARK: publishing

    private struct SkipNote {
        var count = 0
        var warnedAt: ContinuousClock.Instant? = nil
    }

    /// Properties of a message that could not be read were left out (the message was delivered). One line per 10 s.
    private func noteSkippedProperties(_ n: Int) {
        let line = skipNote.withLock { note -> Int? in
            note.count += n
            let now = ContinuousClock.now
            guard note.warnedAt.map({ now - $0 > .seconds(10) }) ?? true else { return nil }
            defer { note.count = 0; note.warnedAt = now }
            return note.count
        }
        if let line {
            logger.warning("MQTT \(broker): \(line) message properties left out (not UTF-8 or over their size limit); the messages were delivered")
        }
    }

    private func ensureOpen(_ s: State) throws(MsgFloError) {
        switch s.phase {
        case .closed: throw MsgFloError(.closed, "MQTT transport to \(broker) is closed")
        case .idle, .connecting: throw MsgFloError(.closed, "MQTT transport to \(broker) is not connected")
        default: break
        }
    }

    func checkOpen() throws(MsgFloError) {
        try state.withLock { s throws(MsgFloError) in try ensureOpen(s) }
    }

    /// `mosquitto_publish`, or `mosquitto_publish_v5` with the properties (MQTT 5 connections only: the
    /// transport refuses properties on MQTT 3.1.1 before they get here).
    private func mosquittoPublish(_ topic: String, _ bytes: [UInt8], _ properties: MessageProperties?) -> Int32 {
        guard let properties, !properties.isEmpty, options.protocolVersion == 5 else {
            return bytes.withUnsafeBytes { buf in
                mosquitto_publish(handle.raw, nil, topic, Int32(buf.count), buf.baseAddress, options.qos, false)
            }
        }
        var list: OpaquePointer?
        do { list = try MQTTProperties.encode(properties) } catch { return Int32(MOSQ_ERR_INVAL.rawValue) }
        defer { mosquitto_property_free_all(&list) }
        return bytes.withUnsafeBytes { buf in
            mosquitto_publish_v5(handle.raw, nil, topic, Int32(buf.count), buf.baseAddress, options.qos, false, list)
        }
    }

    /// Hands a message to libmosquitto and wakes the loop thread; false when there is no connection to send it on.
    private func publishNow(_ topic: String, _ bytes: [UInt8], _ properties: MessageProperties?) throws(MsgFloError) -> Bool {
        let rc = mosquittoPublish(topic, bytes, properties)
        if rc == MosquittoStatus.noConnection { return false }
        if rc != MosquittoStatus.success { throw MosquittoStatus.error(rc, "publish to '\(topic)'", broker: broker) }
        kick()
        return true
    }

    /// Publishes `bytes` to `topic`. While the broker is away the message waits in a bounded buffer and is sent,
    /// in order, once the connection is back; a full buffer is an error.
    func publish(_ topic: String, _ bytes: [UInt8], properties: MessageProperties? = nil) throws(MsgFloError) {
        // The connection may go away meanwhile: then the locked path below buffers the message.
        if direct.load(ordering: .acquiring), try publishNow(topic, bytes, properties) {
            if isPublisher { flow?.issued.add(1, ordering: .releasing) }
            return
        }
        try state.withLock { s throws(MsgFloError) in
            try ensureOpen(s)
            if s.phase == .connected && s.pending.isEmpty, try publishNow(topic, bytes, properties) {
                if isPublisher { flow?.issued.add(1, ordering: .releasing) }
                return
            }
            guard mosquitto_pub_topic_check(topic) == MosquittoStatus.success,
                  mosquitto_validate_utf8(topic, Int32(topic.utf8.count)) == MosquittoStatus.success else {
                throw MsgFloError(.invalidArgument, "MQTT publish on \(broker) failed: invalid topic '\(topic)'")
            }
            guard s.pending.count < Self.maxPendingMessages, s.pendingBytes + bytes.count <= Self.maxPendingBytes else {
                throw MsgFloError(.connectionLost, "MQTT broker \(broker) is away and \(s.pending.count) messages "
                                  + "already wait for it; message to '\(topic)' not sent")
            }
            s.pending.append(Pending(topic: topic, payload: bytes, properties: properties))
            s.pendingBytes += bytes.count
            // Counted under the lock, before the buffer can be flushed and the message confirmed.
            if isPublisher { flow?.issued.add(1, ordering: .releasing) }
            updateDirect(s)
        }
    }

    // MARK: subscriptions

    /// Recomputes the broker subscriptions from sinks and declarations, sends the changes when the session is up,
    /// and returns the message ids of the new subscriptions. Lock held.
    private func resync(_ s: inout State) -> Set<Int32> {
        send(s.subscriptions.resync(sinkFilters: Set(s.sinks.values.map(\.filter))), &s)
    }

    /// Sends a change of the broker subscriptions when the session is up; the message ids of the SUBSCRIBEs. Lock held.
    private func send(_ change: MQTTSubscriptions.Change, _ s: inout State) -> Set<Int32> {
        var mids: Set<Int32> = []
        guard s.sessionUp else { return mids }
        for filter in change.subscribe {
            var mid: Int32 = 0
            if mosquitto_subscribe(handle.raw, &mid, filter, options.qos) == MosquittoStatus.success {
                mids.insert(mid)
                if s.phase == .resubscribing { s.subscriptions.sentDuringRestore(mid) }
            }
        }
        for filter in change.unsubscribe { _ = mosquitto_unsubscribe(handle.raw, nil, filter) }
        if !change.isEmpty { kick() }
        return mids
    }

    private func reindex(_ s: inout State) {
        s.exact = [:]
        s.wildcard = []
        for sink in s.sinks.values.sorted(by: { $0.id < $1.id }) {
            if TopicFilter.hasWildcard(sink.filter) {
                s.wildcard.append(sink)
            } else {
                s.exact[sink.filter, default: []].append(sink)
            }
        }
    }

    private func validateFilter(_ filter: String) throws(MsgFloError) {
        guard mosquitto_sub_topic_check(filter) == MosquittoStatus.success,
              mosquitto_validate_utf8(filter, Int32(filter.utf8.count)) == MosquittoStatus.success else {
            throw MsgFloError(.invalidArgument, "MQTT subscribe on \(broker) failed: invalid topic filter '\(filter)'")
        }
    }

    /// Adds a sink; when this needs a new broker subscription on a live session, waits for its SUBACK (so that
    /// messages sent after this returns are received). Returns the sink id. The waiter is registered under the same
    /// lock as the SUBSCRIBE is queued, so the SUBACK cannot slip past it.
    @discardableResult
    func addSink(filter: String, kind: @escaping @Sendable (Int) -> Sink.Kind) async throws -> Int {
        try validateFilter(filter)
        let timeout = timeouts.operation
        let id = state.withLock { s in
            defer { s.nextId += 1 }
            return s.nextId
        }
        let cancelled = MsgFloError(.cancelled, "subscribing to '\(filter)' on MQTT broker \(broker) cancelled")
        // Cancelled while it waits for the SUBACK: the sink goes (and the broker subscription no one else needs).
        return try await withTaskCancellationHandler {
          try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let outcome = state.withLock { s -> Result<(id: Int, waiting: Bool), MsgFloError> in
                // Under the lock the cancellation handler takes too: cancelled before this, it found no waiter.
                if Task.isCancelled { return .failure(cancelled) }
                do throws(MsgFloError) { try ensureOpen(s) } catch { return .failure(error) }
                let sink = Sink(id: id, filter: filter, kind: kind(id))
                if case .stream(_, let prefetch?) = sink.kind, let flow { flow.addConsumer(sink: id, prefetch: prefetch) }
                // Messages a persistent session brought before anyone consumed them go to the first taker.
                if case .stream(let c, let prefetch) = sink.kind, !s.unclaimed.isEmpty {
                    s.unclaimed.removeAll { entry in
                        guard TopicFilter.matches(filter, entry.topic) else { return false }
                        s.unclaimedBytes -= entry.message.count
                        if prefetch != nil, let flow {
                            // Already read: it must not stop the reading (the SUBACK this call waits for is behind it).
                            let tag = flow.take(sink: id, counted: false)
                            c.yield(Delivery(message: entry.message, queue: entry.topic, tag: tag, settler: flow))
                        } else {
                            c.yield(Delivery(message: entry.message, queue: entry.topic))
                        }
                        return true
                    }
                }
                s.sinks[id] = sink
                reindex(&s)
                let mids = resync(&s)
                guard s.phase == .connected, !mids.isEmpty else { return .success((id, false)) }
                s.subscribeWaiters[id] = SubscribeWaiter(mids: mids, continuation: continuation)
                return .success((id, true))
            }
            switch outcome {
            case .failure(let error):
                continuation.resume(throwing: error)
            case .success(let (id, waiting)):
                guard waiting else { continuation.resume(returning: id); return }
                io.schedule(after: timeout) { [weak self] in
                    guard let self else { return }
                    guard let w = self.state.withLock({ $0.subscribeWaiters.removeValue(forKey: id) }) else { return }
                    self.removeSink(id)
                    w.continuation.resume(throwing: MsgFloError(.timeout,
                        "MQTT broker \(self.broker) did not confirm the subscription to '\(filter)' within \(timeout.inSeconds) s"))
                }
            }
          }
        } onCancel: {
            guard let w = state.withLock({ $0.subscribeWaiters.removeValue(forKey: id) }) else { return }
            removeSink(id)
            w.continuation.resume(throwing: cancelled)
        }
    }

    /// Removes a sink (and the broker subscription no one else needs). The removed sink is released after the
    /// lock, so that its stream's termination handler may run.
    func removeSink(_ id: Int) {
        let removed = state.withLock { s -> Sink? in
            guard let sink = s.sinks.removeValue(forKey: id) else { return nil }
            reindex(&s)
            _ = resync(&s)
            return sink
        }
        if let removed, case .stream(let c, let prefetch) = removed.kind {
            if prefetch != nil { flow?.removeConsumer(sink: id) }
            c.finish()
        }
    }

    /// Makes `topic` a pooled one (subscribed as `$share/<pool>/<topic>`), before it is declared or consumed.
    func setPool(_ pool: String, for topic: String) throws(MsgFloError) {
        try WorkerPool.check(pool)
        try state.withLock { s throws(MsgFloError) in try s.subscriptions.setPool(pool, for: topic) }
    }

    /// Declares an inport topic (subscribed at once with a persistent session). With a separate publishing
    /// connection (QoS > 0) it waits for the SUBACK: what this process announces next goes out on the other
    /// connection and could otherwise reach the broker first, and a command sent in reply to the announcement would
    /// find no subscription yet (the broker drops it).
    func declare(_ topic: String) async throws {
        try validateFilter(topic)
        let wait = publisher != nil
        let timeout = timeouts.operation
        let waiterId = state.withLock { s in
            defer { s.nextId += 1 }
            return s.nextId
        }
        let cancelled = MsgFloError(.cancelled, "declaring '\(topic)' on MQTT broker \(broker) cancelled")
        // Cancelled while it waits for the SUBACK: the declaration stays (its SUBSCRIBE is sent), the caller goes.
        let id = try await withTaskCancellationHandler {
          try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let outcome = state.withLock { s -> Result<Int?, MsgFloError> in
                if Task.isCancelled { return .failure(cancelled) }
                do throws(MsgFloError) { try ensureOpen(s) } catch { return .failure(error) }
                let filters = Set(s.sinks.values.map(\.filter))
                guard let change = s.subscriptions.declare(topic, sinkFilters: filters) else { return .success(nil) }
                let mids = send(change, &s)
                guard wait, s.phase == .connected, !mids.isEmpty else { return .success(nil) }
                let id = waiterId
                s.subscribeWaiters[id] = SubscribeWaiter(mids: mids, continuation: continuation)
                return .success(id)
            }
            switch outcome {
            case .failure(let error): continuation.resume(throwing: error)
            case .success(nil): continuation.resume(returning: 0)
            case .success(let id?):
                io.schedule(after: timeout) { [weak self] in
                    guard let self else { return }
                    guard let w = self.state.withLock({ $0.subscribeWaiters.removeValue(forKey: id) }) else { return }
                    w.continuation.resume(throwing: MsgFloError(.timeout,
                        "MQTT broker \(self.broker) did not confirm the subscription to '\(topic)' within \(timeout.inSeconds) s"))
                }
            }
          }
        } onCancel: {
            state.withLock { $0.subscribeWaiters.removeValue(forKey: waiterId) }?.continuation.resume(throwing: cancelled)
        }
        _ = id
    }
}

/// `close(2)` and `shutdown(2)` for the loop thread (``MQTTConnection`` has methods of those names).
private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
private func endWriting(_ fd: Int32) { _ = shutdown(fd, Int32(SHUT_WR)) }
