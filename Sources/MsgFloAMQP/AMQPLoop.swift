import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

/// The owner of one librabbitmq connection and of the thread that makes every C call on it.
///
/// The protocol state lives in pure state machines that this loop feeds and whose answers it writes: the consumer
/// channel's delivery tags (``DeliveryWindow``), publisher confirms (``PublisherConfirms``) and what to set up again
/// after a reconnect (``AMQPTopology``). The loop itself is split by concern: this file (state, the turn, sleeping,
/// closing), `+Connecting` (connect, lose, reconnect, restore), `+Publishing`, `+Receiving` (frames, acks, channel
/// closes), `+Operations` (declarations, consumers) and AMQPCalls (RPCs and their replies).
///
/// `@unchecked Sendable`: the instance is handed to its thread once, at start, and from then on only that thread
/// touches its stored properties; other threads talk to it only through `core` (a lock-protected queue and an
/// eventfd), which is itself Sendable.
final class AMQPLoop: @unchecked Sendable {
    let core: AMQPCore
    /// Handed to every delivery on the consumer channel.
    let settler: AMQPCore.Settler
    var logger: Logger { core.logger }
    var settings: AMQPSettings { core.settings }
    /// The broker at the address of the current (or last tried) connection: what messages name.
    var url: BrokerURL
    /// The URL's addresses in the order tried (`?shuffle=true` shuffles them once per transport), and the index of
    /// the current one. A lost connection fails over to the next.
    let endpoints: [BrokerURL.Endpoint]
    var endpointIndex = 0

    var conn: amqp_connection_state_t?
    var connectedPending: Pending<Void>?
    /// The consumer channel's delivery tags and the deferred multiple-ack.
    var window = DeliveryWindow()
    /// What to declare, bind and consume again after a reconnect.
    var topology = AMQPTopology()
    /// Messages written and not yet confirmed by the broker.
    var confirms = PublisherConfirms<Outgoing>()
    /// The connection's generation: deliveries of an older one cannot be settled any more.
    var generation: UInt64 { window.generation }

    /// Deliveries read in this pass, handed over together at its end, a run for one stream at a time: a consumer
    /// task woken once finds them all buffered, rather than being woken (a thread switch) for each one.
    var handOver: [(DeliveryStream.Continuation, Delivery)] = []

    /// Deliveries whose content is still arriving.
    var content = ContentAssembler()

    /// Messages to publish before new ones: the unconfirmed ones of a lost connection.
    var resend: [Outgoing] = []
    var released = 0

    // Reused buffers, swapped with the shared queues each turn.
    var publishBatch: [Outgoing] = []
    var settleBatch: [Settle] = []
    var opBatch: [QueuedOp] = []
    /// Binds and unbinds written on each binding channel and not answered yet, and those to write (again).
    var bindingLanes = [ControlPipeline<QueuedOp>](repeating: .init(), count: Channel.bindingLanes)
    var bindingAgain: [QueuedOp] = []
    /// The binding channels are open on this connection.
    var bindingChannelsOpen = false

    var properties = amqp_basic_properties_t()
    /// C memory for a publish's own properties, reset before each (connection thread only).
    let propertyArena = AMQPPropertyArena()

    init(core: AMQPCore, connected: Pending<Void>) {
        self.core = core
        self.settler = AMQPCore.Settler(core: core)
        self.endpoints = core.settings.url.connectionOrder()
        self.url = core.settings.url.at(endpoints[0])
        self.plainSocket = core.settings.url.scheme != .amqps
        self.gather = plainSocket ? cmsgflo_gather_new() : nil
        self.connectedPending = connected
        self.coalescing = ReceiveCoalescing(most: core.settings.coalesce)
        if core.settings.persistentMessages {
            properties._flags = 1 << 12  // AMQP_BASIC_DELIVERY_MODE_FLAG
            properties.delivery_mode = 2
        }
    }

    deinit { cmsgflo_gather_free(gather) }

    var io: IOThread { core.io }

    var lostReason = ""

    // Cluster mode (several addresses, or quorum queues): a nacked message is published again after `nackPause`,
    // for up to `maxNackRounds` rounds without any positive confirm in between, before it is given up as before.
    var nacked: [Outgoing] = []

    var nackRetryAt: ContinuousClock.Instant?

    var nackRounds = 0

    /// Set by a nack in cluster mode: the publishing channel is closed and opened again (once the broker has
    /// answered everything published on it) before the nacked messages go out again. RabbitMQ (3.10) keeps, per
    /// channel and quorum queue, the leader it first talked to: a channel whose first publish to a queue went out
    /// while the queue's record still named the killed node's leader gets every later publish to that queue nacked
    /// (the enqueuer registration's call to the dead node fails with nodedown, forever), even after a new leader
    /// took over. A new channel looks the leader up again.
    var renewPublishing = false

    /// The nack warning is logged once per retry round, not once per message.
    var nackWarned = false

    /// Mandatory messages the broker returned (basic.return, which comes before the confirm of the same message),
    /// oldest first: exchange, routing key, reply text.
    var returned: [(exchange: String, routingKey: String, text: String)] = []

    /// The last `readFrames` found the socket empty (plain TCP: librabbitmq held nothing more, or its recv found
    /// nothing), and the loop has not polled since. A pass that stopped there was not cut short by its limit, so
    /// the loop may sleep in poll, and the next turn need not read. Reading an empty socket costs two system calls
    /// (recv, then librabbitmq's zero poll); a turn that only writes what the consumers just left (their acks)
    /// comes right after every pass.
    var socketFoundEmpty = false

    /// Plain TCP (not TLS): poll sees all that is pending.
    let plainSocket: Bool

    /// Holds what librabbitmq writes over a turn, to write it with one send (plain TCP; nil with TLS, or with a
    /// librabbitmq whose socket it does not know).
    let gather: OpaquePointer?

    /// The current connection's socket writes through ``gather``.
    var gathering = false

    var skippedPropertiesWarnedAt: ContinuousClock.Instant? = nil

    var skippedProperties = 0

    /// The text of the last time the broker closed the publishing channel.
    var lastPublishRefusal = ""

    // MARK: the loop

    /// The owner thread's body (``IOThread/start(_:)``): connects, serves, reconnects, and closes.
    func run() {
        do {
            try openFirst()
        } catch {
            let (early, closing) = core.shared.withLock { s -> ([QueuedOp], Bool) in
                s.threadRunning = false
                defer { s.ops = [] }
                return (s.ops, s.closeRequested)
            }
            for op in early { op.pending.resume(.failure(error)) }
            connectedPending?.resume(.failure(error))
            connectedPending = nil
            // Closed while connecting (a cancelled connect, a close): whoever waits in close() is answered now.
            if closing { core.finishClosed(reason: "transport closed") }
            return
        }
        core.setState(.connected)
        connectedPending?.resume(.success(()))
        connectedPending = nil

        while true {
            if conn == nil {
                if !reconnect() { break }
                continue
            }
            guard let c = conn else { continue }
            if takeWork() { break }
            var busy = !settleBatch.isEmpty || !opBatch.isEmpty
            // librabbitmq writes a publish as three sends and each ack as one. On plain TCP the turn's writes are
            // gathered and leave in one send; with TLS a turn that writes several corks the socket, so they leave in
            // as few segments as fit and the broker reads them in fewer reads. Not while the broker blocks us.
            let gathered = gathering && !blocked
            if gathered { cmsgflo_gather_begin(gather, gatherTimeoutMs) }
            let corked = !gathered && resend.count + publishBatch.count + (settleBatch.isEmpty ? 0 : 1) >= 2
                && !blocked && Self.cork(c, true)
            if blocked {
                // A resource alarm: the broker does not read publishes now, and a write could block this thread.
                // Hold them (senders feel it through the outstanding bound) until it unblocks us.
                resend.append(contentsOf: publishBatch)
                publishBatch.removeAll(keepingCapacity: true)
            } else if renewPublishing && confirms.pending > 0 {
                // A nack in cluster mode: the channel is replaced once the broker has answered all it holds.
                resend.append(contentsOf: publishBatch)
                publishBatch.removeAll(keepingCapacity: true)
            } else if (renewPublishing ? reopenPublishChannel(c, close: true) : true)
                        && (!resend.isEmpty || !publishBatch.isEmpty || nackRetryAt != nil) {
                retryNackedIfDue()
                busy = busy || !resend.isEmpty || !publishBatch.isEmpty
                _ = publishAll(c)
            }
            if conn != nil && !settleBatch.isEmpty { settleAll(c) }
            if conn != nil && window.hasUnsentAck { flushAcksIfDue(c) }
            if gathered { endGather() }
            if corked && conn != nil { _ = Self.cork(c, false) }
            if conn == nil {
                // Lost while writing: operations taken this turn wait for the next connection; acks are void.
                settleBatch.removeAll(keepingCapacity: true)
                let ops = opBatch
                opBatch.removeAll(keepingCapacity: true)
                if !ops.isEmpty { core.shared.withLock { s in s.ops.insert(contentsOf: ops, at: 0) } }
                continue
            }
            if !opBatch.isEmpty {
                runOps(c)
                if conn == nil { continue }
            }
            // Right after a pass that emptied the socket, this turn is for what the consumers left (acks, sends):
            // no read. Poll, in `sleep`, sees anything the broker wrote since and returns at once; a busy loop that
            // does not sleep reads on the turn after (never two turns without a read).
            let skipRead = socketFoundEmpty && amqp_frames_enqueued(c) == 0 && amqp_data_in_buffer(c) == 0
            socketFoundEmpty = false
            let frames = skipRead ? 0 : readFrames(c, limit: 2048)
            if conn == nil { continue }
            // Consumers on this thread handle what was just read; their sends and acks go out next turn.
            core.executor.runPending()
            // A pass that found the socket empty goes to poll next: it returns at once if more has come. What
            // the jobs just run left to do (sends, acks, operations, more jobs) keeps `sleep` from blocking; a turn
            // for them alone would read the empty socket first (two system calls to learn nothing).
            busy = busy || (frames > 0 && !socketFoundEmpty) || core.executor.pending
            if !busy { sleep(c) }
        }
        shutdown()
    }

    /// How long a gathered write may wait for the broker to read (the operation timeout).
    var gatherTimeoutMs: Int32 {
        let t = settings.timeouts.operation.components
        return Int32(clamping: t.seconds * 1000 + t.attoseconds / 1_000_000_000_000_000)
    }

    /// Ends the turn's gathering window: writes what it holds. A write that fails loses the connection; what it
    /// published is still unconfirmed and goes out again after the reconnect, and its acks are void (redelivered).
    func endGather() {
        let written = cmsgflo_gather_end(gather)
        if written > 0 {
            core.gatheredWrites.add(1, ordering: .relaxed)
        } else if written < 0 && conn != nil {
            let e = Int32(-written)
            lose("writing to the broker failed: " + (e == ETIMEDOUT ? "it read nothing for \(settings.timeouts.operation)"
                                                       : String(cString: strerror(e))))
        }
    }

    /// Sets or clears TCP_CORK on the connection's socket (uncorking sends what waits at once). False when it
    /// could not (then nothing is held back).
    static func cork(_ c: amqp_connection_state_t, _ on: Bool) -> Bool {
        let fd = amqp_get_sockfd(c)
        guard fd >= 0 else { return false }
        var value: Int32 = on ? 1 : 0
        return setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    /// Takes queued work; returns true when close was asked for.
    func takeWork() -> Bool {
        var newSubs: [SubscriptionRecord] = []
        let closing = core.shared.withLock { s -> Bool in
            swap(&s.publishes, &publishBatch)
            swap(&s.settles, &settleBatch)
            swap(&s.ops, &opBatch)
            if !s.newSubscriptions.isEmpty {
                newSubs = s.newSubscriptions
                s.newSubscriptions = []
            }
            return s.closeRequested
        }
        for r in newSubs { topology.add(r) }
        return closing
    }

    /// At shutdown: adds what is still queued to the batches already taken.
    func takeRemaining() {
        core.shared.withLock { s in
            publishBatch.append(contentsOf: s.publishes)
            s.publishes.removeAll()
            settleBatch.append(contentsOf: s.settles)
            s.settles.removeAll()
            opBatch.append(contentsOf: s.ops)
            s.ops.removeAll()
        }
    }

    /// Blocks in poll on the socket and the eventfd until there is something to do.
    func sleep(_ c: amqp_connection_state_t) {
        // A caller's ack wakes us only when it is needed soon: when no deferred ack is pending (the first one starts
        // the ackDelay clock), or when a consumer runs short of prefetch room. Otherwise acks wait for the next
        // delivery or the deferred ack's deadline, whichever comes first. Nacks always wake us.
        let wakeOnAck = !window.hasUnsentAck || window.anyTight
        let idle = core.shared.withLock { s -> Bool in
            if !s.publishes.isEmpty || !s.settles.isEmpty || !s.ops.isEmpty || s.closeRequested { return false }
            if core.executor.pending { return false }
            s.sleeping = true
            s.signalled = false
            s.wakeOnAck = wakeOnAck
            return true
        }
        guard idle else { return }
        // librabbitmq sends and checks heartbeats when we read; wake often enough for that.
        var limit = Duration.milliseconds(settings.heartbeat > 0 ? min(1000, settings.heartbeat * 250) : 1000)
        if let at = nackRetryAt { limit = max(.milliseconds(1), min(limit, at - ContinuousClock.now)) }
        if let due = window.unsentAckDue { limit = max(.milliseconds(1), min(limit, due - ContinuousClock.now)) }
        let ready = io.wait(socket: amqp_get_sockfd(c), limit: limit)
        // Woken by a caller with nothing to read: the next turn need not read either. After a timeout it does (a
        // read is when librabbitmq sends our heartbeats).
        socketFoundEmpty = plainSocket && ready.socket == 0 && ready.woken
        let now = ContinuousClock.now
        if ready.socket != 0 {
            // Receive coalescing: in a stream, wait a little longer (still woken by callers' work) so the next turn
            // reads a run of messages rather than the one or two that just came in.
            if let linger = coalescing.socketReady(at: now, tight: window.anyTight), !ready.woken {
                io.wait(limit: linger)
                core.coalescedWaits.add(1, ordering: .relaxed)
            }
        }
        core.shared.withLock { s in s.sleeping = false; s.wakeOnAck = true }
        // librabbitmq sends our heartbeats when we read, but notices a silent broker only on reads with a deadline,
        // and ours never wait: watch the socket ourselves (heartbeat frames make it readable too).
        if ready.socket != 0 {
            lastHeard = now
        } else if settings.heartbeat > 0, now - lastHeard > .seconds(2 * settings.heartbeat) {
            lose("nothing heard from the broker for \(2 * settings.heartbeat) s (missed heartbeats)")
        }
    }

    /// Receive coalescing: how long to linger after the socket became readable, when messages stream in.
    var coalescing: ReceiveCoalescing

    /// The broker sent connection.blocked (a resource alarm) and has not unblocked us yet.
    var blocked = false

    /// When the broker was last heard from (any bytes, heartbeats included).
    var lastHeard = ContinuousClock.now

    // MARK: closing

    func shutdown() {
        if let c = conn {
            // Flush what callers handed us and give the broker a moment to confirm it.
            takeRemaining()
            if !blocked && (!resend.isEmpty || !publishBatch.isEmpty) { _ = publishAll(c) }
            if conn != nil && !settleBatch.isEmpty { settleAll(c) }
            if conn != nil { flushAcks(c) }
            let deadline = ContinuousClock.now + min(settings.timeouts.operation, .seconds(2))
            while conn != nil, confirms.pending > 0, ContinuousClock.now < deadline {
                if readFrames(c, limit: 4096) == 0 { io.wait(socket: amqp_get_sockfd(c), limit: .milliseconds(20)) }
            }
            if let c = conn {
                var tv = timeval(.seconds(2))
                amqp_set_rpc_timeout(c, &tv)
                _ = amqp_connection_close(c, 200)
                core.liveSocket.withLock { $0 = -1 }
                amqp_destroy_connection(c)
                conn = nil
            }
        }
        let queued = core.shared.withLock { s -> [Outgoing] in
            defer { s.publishes = [] }
            return s.publishes
        }
        let unsent = confirms.pending + resend.count + publishBatch.count + queued.count
        let closedError = MsgFloError(.closed, "transport to \(url) closed before the broker confirmed the message")
        for o in confirms.outstanding { o.waiter?.resume(.failure(closedError)) }
        for o in resend + publishBatch + queued { o.waiter?.resume(.failure(closedError)) }
        if unsent > 0 {
            logger.warning("AMQP transport to \(url) closed with \(unsent) message(s) not confirmed by the broker")
        }
        topology.finishAll()
        for op in opBatch { op.pending.resume(.failure(MsgFloError(.closed, "transport to \(url) is closed"))) }
        opBatch = []
        core.shared.withLock { $0.threadRunning = false }
        core.finishClosed(reason: "transport closed")
    }
}

