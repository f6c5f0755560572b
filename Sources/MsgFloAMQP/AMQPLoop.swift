import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

// Method ids and flags librabbitmq defines as casting macros, which Swift does not import.
enum AMQPMethod {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOk: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOk: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

/// Channels of one connection. Declarations run on their own channel so that a refused redeclare (which closes the
/// channel) never takes consumers or publishes down with it.
enum Channel {
    /// Manual-ack consumers.
    static let consume: amqp_channel_t = 1
    /// Declarations, bindings, passive checks.
    static let control: amqp_channel_t = 2
    /// Publishing, in confirm mode.
    static let publish: amqp_channel_t = 3
    /// No-ack data taps.
    static let tap: amqp_channel_t = 4
}

/// Why a broker call failed.
enum CallError: Error {
    /// The connection is unusable; reconnect.
    case connectionLost(String)
    /// The broker closed the channel (it has been reopened): reply code and text.
    case channel(code: UInt16, text: String)
    /// librabbitmq refused to encode the call (a name too long for a short string, …): nothing was written, the
    /// connection is fine, the call fails alone.
    case invalid(String)

    /// librabbitmq statuses that say the arguments were bad, not the connection.
    static func isArgumentStatus(_ rc: Int32) -> Bool {
        rc == AMQP_STATUS_BAD_AMQP_DATA.rawValue || rc == AMQP_STATUS_INVALID_PARAMETER.rawValue
            || rc == AMQP_STATUS_TABLE_TOO_BIG.rawValue
    }

    func asMsgFloError(_ what: String, _ url: BrokerURL) -> MsgFloError {
        switch self {
        case .connectionLost(let why): MsgFloError(.connectionLost, "\(what) on \(url) failed: connection lost: \(why)")
        case .invalid(let why): MsgFloError(.invalidArgument, "\(what) on \(url) refused by librabbitmq: \(why)")
        case .channel(let code, let text):
            MsgFloError(code == 404 ? .notFound : code == 406 ? .preconditionFailed : code == 403 ? .accessRefused
                                                  : .protocolError, "\(what) on \(url) failed: \(text)")
        }
    }
}

/// A declaration or binding made through the transport, made again after a reconnect.
enum TopologyItem: Equatable {
    case inport(String, persistent: Bool)
    case outport(String, persistent: Bool)
    case discovery
    case binding(Binding)
    case quorumInport(String)
}

struct LiveSubscription {
    let record: SubscriptionRecord
    var tapQueue: String?
    /// Consuming on the current connection.
    var started = false
    /// Deliveries the broker counts against this consumer's prefetch: not yet covered by an ack, nack or reject
    /// written to the socket (held by the caller, or settled and waiting in the deferred multiple-ack).
    var unacked = 0

    /// The broker will soon stop delivering to this consumer unless acks reach it: half its prefetch is unacked.
    var tight: Bool { unacked >= max(1, record.prefetch / 2) }
}

/// The owner of one librabbitmq connection and of the thread that makes every C call on it.
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
    private(set) var url: BrokerURL
    /// The URL's addresses in the order tried (`?shuffle=true` shuffles them once per transport), and the index of
    /// the current one. A lost connection fails over to the next.
    private let endpoints: [BrokerURL.Endpoint]
    private var endpointIndex = 0

    private var conn: amqp_connection_state_t?
    private var connectedPending: Pending<Void>?
    /// Bumped on every new connection; deliveries of an older one cannot be settled any more.
    private var generation: UInt64 = 0

    private var topology: [TopologyItem] = []
    private var subscriptions: [Int: LiveSubscription] = [:]

    // Channel-1 delivery tags not yet settled: window[head + (tag - base)] holds the subscription id (held by the
    // caller), ackPending(id) (acked by the caller, not yet written), or settledMark. Tags on one channel count up
    // from 1 with no gaps.
    private var window: [Int32] = []
    private var head = 0
    private var base: UInt64 = 1
    private static let settledMark: Int32 = -2
    private static func ackPending(_ id: Int32) -> Int32 { -3 - id }
    private static func ackPendingID(_ mark: Int32) -> Int32? { mark <= -3 ? -3 - mark : nil }

    // The deferred multiple-ack: acks of the settled run at the front of the window are written in one frame, once
    // a consumer it covers runs short of prefetch room (at once for small prefetches), or `ackDelay` after the first
    // of them (poll wakes us for that), or at close. A flood of deliveries then costs the broker one ack frame per
    // hundred messages or so instead of one each; an acked message stays unacked on the broker for at most
    // `ackDelay` (were we to die then, it would be delivered again: at-least-once, as before).
    private var unsentAck: UInt64 = 0
    private var unsentSince = ContinuousClock.now
    /// Subscription id → how many of its deliveries the unsent multiple-ack covers.
    private var unsentBySub: [Int: Int] = [:]
    static let ackDelay: Duration = .milliseconds(5)

    /// Deliveries read in this pass, handed over together at its end (to their handler, or their stream): a
    /// consumer task woken once finds them all buffered, rather than being woken (a thread switch) for each one.
    private var handOver: [(SubscriptionRecord, Delivery)] = []

    // Publisher confirms: messages written and not yet confirmed, in publish order, with their sequence numbers.
    private var unconfirmed: [Outgoing] = []
    private var unconfirmedHead = 0
    private var unconfirmedBase: UInt64 = 1
    private var confirmedFlags: [Bool] = []
    private var nextSeq: UInt64 = 1
    /// Messages to publish before new ones: the unconfirmed ones of a lost connection.
    private var resend: [Outgoing] = []
    private var released = 0

    // Reused buffers, swapped with the shared queues each turn.
    private var publishBatch: [Outgoing] = []
    private var settleBatch: [Settle] = []
    private var opBatch: [QueuedOp] = []
    private var ackedInBatch: [UInt64] = []

    private var properties = amqp_basic_properties_t()
    /// C memory for a publish's own properties, reset before each (connection thread only).
    private let propertyArena = AMQPPropertyArena()

    init(core: AMQPCore, connected: Pending<Void>) {
        self.core = core
        self.settler = AMQPCore.Settler(core: core)
        self.endpoints = core.settings.url.connectionOrder()
        self.url = core.settings.url.at(endpoints[0])
        self.plainSocket = core.settings.url.scheme != .amqps
        self.connectedPending = connected
        if core.settings.persistentMessages {
            properties._flags = 1 << 12  // AMQP_BASIC_DELIVERY_MODE_FLAG
            properties.delivery_mode = 2
        }
    }

    var io: IOThread { core.io }

    // MARK: the loop

    /// The owner thread's body (``IOThread/start(_:)``): connects, serves, reconnects, and closes.
    func run() {
        do {
            try openFirst()
        } catch {
            let early = core.shared.withLock { s -> [QueuedOp] in
                s.threadRunning = false
                defer { s.ops = [] }
                return s.ops
            }
            for op in early { op.pending.resume(.failure(error)) }
            connectedPending?.resume(.failure(error))
            connectedPending = nil
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
            if blocked {
                // A resource alarm: the broker does not read publishes now, and a write could block this thread.
                // Hold them (senders feel it through the outstanding bound) until it unblocks us.
                resend.append(contentsOf: publishBatch)
                publishBatch.removeAll(keepingCapacity: true)
            } else if renewPublishing && pendingConfirms > 0 {
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
            if conn != nil && unsentAck > 0 { flushAcksIfDue(c) }
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
            let frames = readFrames(c, limit: 2048)
            if conn == nil { continue }
            // Consumers on this thread handle what was just read; their sends and acks go out next turn.
            let ran = core.executor.runPending()
            // A pass that emptied librabbitmq's buffer goes to poll next: it returns at once if more has come.
            busy = busy || (frames > 0 && !readDry) || ran > 0 || core.executor.pending
            if !busy { sleep(c) }
        }
        shutdown()
    }

    /// Takes queued work; returns true when close was asked for.
    private func takeWork() -> Bool {
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
        for r in newSubs { subscriptions[r.id] = LiveSubscription(record: r, tapQueue: nil) }
        return closing
    }

    /// At shutdown: adds what is still queued to the batches already taken.
    private func takeRemaining() {
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
    private func sleep(_ c: amqp_connection_state_t) {
        // A caller's ack wakes us only when it is needed soon: when no deferred ack is pending (the first one starts
        // the ackDelay clock), or when a consumer runs short of prefetch room. Otherwise acks wait for the next
        // delivery or the deferred ack's deadline, whichever comes first. Nacks always wake us.
        let wakeOnAck = unsentAck == 0 || subscriptions.values.contains { $0.tight }
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
        if unsentAck > 0 {
            limit = max(.milliseconds(1), min(limit, Self.ackDelay - (ContinuousClock.now - unsentSince)))
        }
        let ready = io.wait(socket: amqp_get_sockfd(c), limit: limit)
        core.shared.withLock { s in s.sleeping = false; s.wakeOnAck = true }
        // librabbitmq sends our heartbeats when we read, but notices a silent broker only on reads with a deadline,
        // and ours never wait: watch the socket ourselves (heartbeat frames make it readable too).
        let now = ContinuousClock.now
        if ready.socket != 0 {
            lastHeard = now
        } else if settings.heartbeat > 0, now - lastHeard > .seconds(2 * settings.heartbeat) {
            lose("nothing heard from the broker for \(2 * settings.heartbeat) s (missed heartbeats)")
        }
    }

    /// The broker sent connection.blocked (a resource alarm) and has not unblocked us yet.
    private var blocked = false

    /// When the broker was last heard from (any bytes, heartbeats included).
    private var lastHeard = ContinuousClock.now

    // MARK: connecting

    private func timeval(_ d: Duration) -> Glibc.timeval {
        let (s, a) = d.components
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int(a / 1_000_000_000_000))
    }

    /// Connects to the first address that answers, in order; with one address, exactly `openConnection()`.
    private func openFirst() throws(MsgFloError) {
        var failures: [MsgFloError] = []
        for i in endpoints.indices {
            endpointIndex = i
            url = settings.url.at(endpoints[i])
            do { return try openConnection() } catch { failures.append(error) }
        }
        if failures.count == 1 { throw failures[0] }
        let last = failures.last!
        throw MsgFloError(last.code, "no address of \(settings.url) answers: "
                          + failures.map(\.message).joined(separator: "; "))
    }

    /// One pass over the addresses for a reconnect, starting after the one whose connection was lost (the same one
    /// when there is only one). Throws the last failure.
    private func openNext() throws(MsgFloError) {
        var lastError: MsgFloError?
        let lost = endpointIndex
        for step in 1...endpoints.count {
            endpointIndex = (lost + step) % endpoints.count
            url = settings.url.at(endpoints[endpointIndex])
            do { return try openConnection() } catch { lastError = error }
        }
        throw lastError!
    }

    private func openConnection() throws(MsgFloError) {
        guard let c = amqp_new_connection() else {
            throw MsgFloError(.connectionFailed, "cannot connect to \(url): out of memory")
        }
        var ok = false
        defer { if !ok { amqp_destroy_connection(c) } }
        let tls = url.scheme == .amqps
        guard let socket = tls ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c) else {
            throw MsgFloError(.connectionFailed, "cannot connect to \(url): cannot create a socket")
        }
        if tls {
            amqp_ssl_socket_set_verify_peer(socket, settings.verifyPeer ? 1 : 0)
            if settings.verifyPeer && Self.isIPAddress(url.host) {
                // librabbitmq checks DNS names only; let OpenSSL check the IP address during the handshake.
                amqp_ssl_socket_set_verify_hostname(socket, 0)
                guard cmsgflo_ssl_expect_ip(amqp_ssl_socket_get_context(socket), url.host) == 1 else {
                    throw MsgFloError(.tls, "cannot set up TLS address verification for \(url)")
                }
            } else {
                amqp_ssl_socket_set_verify_hostname(socket, settings.verifyPeer ? 1 : 0)
            }
            if let ca = settings.caFile, settings.verifyPeer {
                let rc = amqp_ssl_socket_set_cacert(socket, ca)
                if rc != AMQP_STATUS_OK.rawValue {
                    throw MsgFloError(.tls, "cannot use CA file '\(ca)' for \(url): \(Self.statusText(rc))")
                }
            }
            if let cert = settings.certFile, let key = settings.keyFile {
                let rc = amqp_ssl_socket_set_key(socket, cert, key)
                if rc != AMQP_STATUS_OK.rawValue {
                    throw MsgFloError(.tls, "cannot use client certificate '\(cert)' for \(url): \(Self.statusText(rc))")
                }
            }
        }
        let started = ContinuousClock.now
        var tv = timeval(settings.timeouts.connect)
        let rc = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &tv)
        if rc != AMQP_STATUS_OK.rawValue {
            let code: MsgFloError.Code = rc == AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue
                || rc == AMQP_STATUS_SSL_ERROR.rawValue || rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue
                || rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue ? .tls : .connectionFailed
            var why = rc == AMQP_STATUS_TIMEOUT.rawValue ? "no answer within \(settings.timeouts.connect)"
                : Self.statusText(rc)
            if rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue || rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue {
                why = "TLS verification of the broker's certificate failed (\(why); CA file "
                    + "\(settings.caFile.map { "'\($0)'" } ?? "none"))"
            } else if code == .tls {
                why = "TLS handshake failed (\(why)): is this a TLS port? amqps:// needs one, amqp:// a plain one"
            }
            throw MsgFloError(code, "cannot connect to \(url): \(why)")
        }
        let left = max(.milliseconds(200), settings.timeouts.connect - (ContinuousClock.now - started))
        var handshake = timeval(left)
        amqp_set_handshake_timeout(c, &handshake)
        var rpc = timeval(settings.timeouts.operation)
        amqp_set_rpc_timeout(c, &rpc)
        let reply = cmsgflo_amqp_login_plain_caps(c, settings.url.vhost, 0, 131_072, Int32(settings.heartbeat),
                                                  settings.user, settings.password, "msgflo-swift")
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            throw loginError(reply)
        }
        for ch in [Channel.consume, Channel.control, Channel.publish, Channel.tap] {
            amqp_channel_open(c, ch)
            let r = amqp_get_rpc_reply(c)
            if r.reply_type != AMQP_RESPONSE_NORMAL {
                throw MsgFloError(.connectionFailed, "cannot open a channel on \(url): \(Self.replyText(r))")
            }
        }
        amqp_confirm_select(c, Channel.publish)
        let r = amqp_get_rpc_reply(c)
        if r.reply_type != AMQP_RESPONSE_NORMAL {
            throw MsgFloError(.connectionFailed, "cannot turn on publisher confirms on \(url): \(Self.replyText(r))")
        }
        ok = true
        conn = c
        blocked = false
        lastHeard = .now
        generation += 1
        window.removeAll(keepingCapacity: true)
        head = 0
        base = 1
        nextSeq = 1
        unconfirmedBase = 1
    }

    private func loginError(_ reply: amqp_rpc_reply_t) -> MsgFloError {
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, reply.reply.id == AMQPMethod.connectionClose,
           let p = reply.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self) {
            let text = Self.string(p.pointee.reply_text)
            if p.pointee.reply_code == 403 {
                return MsgFloError(.accessRefused, "login to \(url) refused (wrong user or password): \(text)")
            }
            if p.pointee.reply_code == 530 {
                return MsgFloError(.accessRefused, "login to \(url) refused (virtual host '\(settings.url.vhost)' unknown or not allowed): \(text)")
            }
            return MsgFloError(.connectionFailed, "login to \(url) failed: \(text)")
        }
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
            // RabbitMQ refuses a wrong user, password or vhost with connection.close (403, 530: above). A socket
            // closed before any AMQP answer is another thing: no AMQP 0-9-1 server on that port, typically a TLS
            // port spoken to in plain text.
            if reply.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue
                || reply.library_error == AMQP_STATUS_SOCKET_ERROR.rawValue
                || reply.library_error == AMQP_STATUS_BAD_AMQP_DATA.rawValue
                || reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                let hint = url.scheme == .amqps ? "not an AMQP port?"
                    : "a TLS port? use amqps:// for it; or not an AMQP port"
                return MsgFloError(.wrongProtocol, "cannot connect to \(url): the server closed the connection before the AMQP handshake (\(hint))")
            }
            if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                return MsgFloError(.timeout, "login to \(url) timed out after \(settings.timeouts.connect)")
            }
        }
        return MsgFloError(.connectionFailed, "login to \(url) failed: \(Self.replyText(reply))")
    }

    /// Tears down a dead connection and prepares everything to be sent again on the next one.
    private func lose(_ reason: String) {
        guard let c = conn else { return }
        conn = nil
        amqp_destroy_connection(c)
        logger.warning("AMQP connection to \(url) lost: \(reason); reconnecting")
        // Unconfirmed messages go out again first (the broker may or may not have them: at-least-once).
        var again: [Outgoing] = []
        for i in unconfirmedHead..<unconfirmed.count where !confirmedFlags[i] { again.append(unconfirmed[i]) }
        unconfirmed.removeAll(keepingCapacity: true)
        confirmedFlags.removeAll(keepingCapacity: true)
        unconfirmedHead = 0
        resend = again + nacked + resend
        nacked.removeAll()
        nackRetryAt = nil
        renewPublishing = false
        nackWarned = false
        returned.removeAll()
        window.removeAll(keepingCapacity: true)
        head = 0
        unsentAck = 0
        unsentBySub.removeAll()
        for id in subscriptions.keys {
            subscriptions[id]?.started = false
            subscriptions[id]?.unacked = 0
        }
        lostReason = reason
    }

    private var lostReason = ""

    /// Tries again with backoff until connected (true) or closed (false). Fails queued calls past their deadline.
    private func reconnect() -> Bool {
        var attempt = 0
        var backoff = Backoff()
        var delay = backoff.next()
        while true {
            attempt += 1
            core.setState(.reconnecting(attempt: attempt, reason: lostReason))
            // Wait before trying, woken for close, failing calls that waited too long; consumers on this thread go
            // on meanwhile (their sends are buffered).
            let waited = io.pause(for: delay) {
                if closingWhileDown() { return true }
                // Callers wake us (a close, a call whose deadline must be checked) while we wait.
                core.shared.withLock { s in
                    s.sleeping = true
                    s.signalled = false
                }
                return false
            }
            core.shared.withLock { s in s.sleeping = false }
            if !waited || closingWhileDown() { return false }
            do {
                try openNext()
            } catch {
                lostReason = error.description
                delay = backoff.next()
                continue
            }
            guard let c = conn else { continue }
            logger.notice("AMQP connection to \(url) re-established after \(attempt) attempt(s)")
            if !restore(c) { continue }
            core.setState(.connected)
            return true
        }
    }

    /// While disconnected: true when close was asked for; fails queued calls past their deadline; drops settles.
    private func closingWhileDown() -> Bool {
        let now = ContinuousClock.now
        var expired: [QueuedOp] = []
        var newSubs: [SubscriptionRecord] = []
        let closing = core.shared.withLock { s -> Bool in
            s.settles.removeAll(keepingCapacity: true)
            if !s.newSubscriptions.isEmpty {
                newSubs = s.newSubscriptions
                s.newSubscriptions = []
            }
            if s.ops.contains(where: { $0.deadline <= now }) {
                expired = s.ops.filter { $0.deadline <= now }
                s.ops.removeAll { $0.deadline <= now }
            }
            return s.closeRequested
        }
        for r in newSubs { subscriptions[r.id] = LiveSubscription(record: r, tapQueue: nil) }
        for op in expired {
            op.pending.resume(.failure(MsgFloError(.connectionLost,
                "\(op.op.summary) failed: broker \(url) unreachable for \(settings.timeouts.reconnectWait): \(lostReason)")))
        }
        return closing
    }

    /// Declares, binds and consumes again what was set up on the lost connection.
    private func restore(_ c: amqp_connection_state_t) -> Bool {
        do {
            for item in topology {
                do {
                    try apply(c, item)
                } catch .channel(let code, let text) {
                    logger.warning("AMQP: could not restore \(item) on \(url) after reconnect: \(code) \(text)")
                }
            }
            for id in subscriptions.keys.sorted() {
                do {
                    try startConsumer(c, id)
                } catch .channel(let code, let text) {
                    logger.warning("AMQP: could not consume '\(subscriptions[id]?.record.queue ?? "")' again on \(url) after reconnect: \(code) \(text)")
                }
            }
        } catch .connectionLost(let why) {
            lose(why)
            return false
        } catch {}
        return true
    }

    // MARK: closing

    private func shutdown() {
        if let c = conn {
            // Flush what callers handed us and give the broker a moment to confirm it.
            takeRemaining()
            if !blocked && (!resend.isEmpty || !publishBatch.isEmpty) { _ = publishAll(c) }
            if conn != nil && !settleBatch.isEmpty { settleAll(c) }
            if conn != nil { flushAcks(c) }
            let deadline = ContinuousClock.now + min(settings.timeouts.operation, .seconds(2))
            while conn != nil, pendingConfirms > 0, ContinuousClock.now < deadline {
                if readFrames(c, limit: 4096) == 0 { io.wait(socket: amqp_get_sockfd(c), limit: .milliseconds(20)) }
            }
            if let c = conn {
                var tv = timeval(.seconds(2))
                amqp_set_rpc_timeout(c, &tv)
                _ = amqp_connection_close(c, 200)
                amqp_destroy_connection(c)
                conn = nil
            }
        }
        let queued = core.shared.withLock { s -> [Outgoing] in
            defer { s.publishes = [] }
            return s.publishes
        }
        let unsent = pendingConfirms + resend.count + publishBatch.count + queued.count
        let closedError = MsgFloError(.closed, "transport to \(url) closed before the broker confirmed the message")
        for i in unconfirmedHead..<unconfirmed.count where !confirmedFlags[i] { unconfirmed[i].waiter?.resume(.failure(closedError)) }
        for o in resend + publishBatch + queued { o.waiter?.resume(.failure(closedError)) }
        if unsent > 0 {
            logger.warning("AMQP transport to \(url) closed with \(unsent) message(s) not confirmed by the broker")
        }
        for (_, sub) in subscriptions { sub.record.continuation.finish() }
        subscriptions = [:]
        for op in opBatch { op.pending.resume(.failure(MsgFloError(.closed, "transport to \(url) is closed"))) }
        opBatch = []
        core.shared.withLock { $0.threadRunning = false }
        core.finishClosed(reason: "transport closed")
    }

    private var pendingConfirms: Int {
        var n = 0
        for i in unconfirmedHead..<unconfirmed.count where !confirmedFlags[i] { n += 1 }
        return n
    }

    // MARK: publishing

    /// Publishes the resend list then the batch. Returns false when the connection was lost.
    private func publishAll(_ c: amqp_connection_state_t) -> Bool {
        if !resend.isEmpty {
            let list = resend
            resend = []
            for (i, o) in list.enumerated() where !publishOne(c, o) {
                resend = Array(list[i...]) + publishBatch
                publishBatch.removeAll(keepingCapacity: true)
                return false
            }
        }
        for i in publishBatch.indices where !publishOne(c, publishBatch[i]) {
            resend.append(contentsOf: publishBatch[i...])
            publishBatch.removeAll(keepingCapacity: true)
            return false
        }
        publishBatch.removeAll(keepingCapacity: true)
        return true
    }

    private func publishOne(_ c: amqp_connection_state_t, _ o: Outgoing) -> Bool {
        let rc = o.exchange.withCString { ex in
            o.routingKey.withCString { rk in
                o.body.withUnsafeBytes { body in
                    let bytes = amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress))
                    let mandatory: amqp_boolean_t = o.waiter == nil ? 0 : 1
                    guard o.expiration != nil || o.properties != nil else {
                        return amqp_basic_publish(c, Channel.publish, amqp_cstring_bytes(ex), amqp_cstring_bytes(rk),
                                                  mandatory, 0, &properties, bytes)
                    }
                    propertyArena.reset()
                    var props = propertyArena.basicProperties(properties, o.properties, expiration: o.expiration)
                    return amqp_basic_publish(c, Channel.publish, amqp_cstring_bytes(ex), amqp_cstring_bytes(rk),
                                              mandatory, 0, &props, bytes)
                }
            }
        }
        if CallError.isArgumentStatus(rc) {
            // Nothing was written (the frame could not be encoded): drop this one message, keep the connection.
            // The transport checks names before they are queued, so this is a last line of defence.
            logger.warning("AMQP: message to exchange '\(o.exchange.prefix(60))' routing key '\(o.routingKey.prefix(60))' on \(url) dropped: \(Self.statusText(rc))")
            o.waiter?.resume(.failure(MsgFloError(.invalidArgument, "send on \(url) refused by librabbitmq: \(Self.statusText(rc))")))
            released += 1
            return true
        }
        if rc != AMQP_STATUS_OK.rawValue {
            lose("publish failed: \(Self.statusText(rc))")
            return false
        }
        unconfirmed.append(o)
        confirmedFlags.append(false)
        nextSeq += 1
        return true
    }

    private func confirm(upTo tag: UInt64, multiple: Bool, refused: Bool = false) {
        guard tag >= unconfirmedBase else { return }
        let idx = unconfirmedHead + Int(tag - unconfirmedBase)
        guard idx < unconfirmed.count else { return }
        let retry = refused && retriesNacks
        if !refused { nackRounds = 0 }
        for i in (multiple ? unconfirmedHead : idx)...idx where !confirmedFlags[i] {
            confirmedFlags[i] = true
            if retry {
                // Still outstanding: published again after a pause (a cluster's queue between leaders nacks).
                nacked.append(unconfirmed[i])
                continue
            }
            released += 1
            if unconfirmed[i].waiter != nil { verdict(unconfirmed[i], refused: refused) }
        }
        if retry && nackRetryAt == nil { nackRetryAt = .now + Self.nackPause }
        if retry { renewPublishing = true }
        while unconfirmedHead < unconfirmed.count && confirmedFlags[unconfirmedHead] {
            unconfirmedHead += 1
            unconfirmedBase += 1
        }
        if unconfirmedHead == unconfirmed.count {
            unconfirmed.removeAll(keepingCapacity: true)
            confirmedFlags.removeAll(keepingCapacity: true)
            unconfirmedHead = 0
        } else if unconfirmedHead > 4096 && unconfirmedHead * 2 > unconfirmed.count {
            unconfirmed.removeFirst(unconfirmedHead)
            confirmedFlags.removeFirst(unconfirmedHead)
            unconfirmedHead = 0
        }
    }

    // Cluster mode (several addresses, or quorum queues): a nacked message is published again after `nackPause`,
    // for up to `maxNackRounds` rounds without any positive confirm in between, before it is given up as before.
    private var nacked: [Outgoing] = []
    private var nackRetryAt: ContinuousClock.Instant?
    private var nackRounds = 0
    /// Set by a nack in cluster mode: the publishing channel is closed and opened again (once the broker has
    /// answered everything published on it) before the nacked messages go out again. RabbitMQ (3.10) keeps, per
    /// channel and quorum queue, the leader it first talked to: a channel whose first publish to a queue went out
    /// while the queue's record still named the killed node's leader gets every later publish to that queue nacked
    /// (the enqueuer registration's call to the dead node fails with nodedown, forever), even after a new leader
    /// took over. A new channel looks the leader up again.
    private var renewPublishing = false
    /// The nack warning is logged once per retry round, not once per message.
    private var nackWarned = false
    static let nackPause: Duration = .milliseconds(500)
    static let maxNackRounds = 120
    private var retriesNacks: Bool {
        (!settings.url.alternates.isEmpty || settings.queueType == .quorum) && nackRounds < Self.maxNackRounds
    }

    /// Moves nacked messages whose pause is over to the front of the resend list.
    private func retryNackedIfDue() {
        guard let at = nackRetryAt, ContinuousClock.now >= at else { return }
        nackRetryAt = nil
        nackRounds += 1
        nackWarned = false
        resend = nacked + resend
        nacked.removeAll()
    }

    /// Mandatory messages the broker returned (basic.return, which comes before the confirm of the same message),
    /// oldest first: exchange, routing key, reply text.
    private var returned: [(exchange: String, routingKey: String, text: String)] = []

    /// Tells the caller of a mandatory publish what became of it.
    private func verdict(_ o: Outgoing, refused: Bool) {
        if let i = returned.firstIndex(where: { $0.exchange == o.exchange && $0.routingKey == o.routingKey }) {
            let r = returned.remove(at: i)
            let target = o.exchange.isEmpty ? "no queue '\(o.routingKey)'" : "exchange '\(o.exchange)' routes it to no queue"
            o.waiter?.resume(.failure(MsgFloError(.notFound, "\(target) on \(url) (\(r.text))")))
        } else if refused {
            o.waiter?.resume(.failure(MsgFloError(.protocolError, "the broker \(url) refused the message (basic.nack)")))
        } else {
            o.waiter?.resume(.success(()))
        }
    }

    /// Gives the room of confirmed messages back to waiting senders.
    private func releaseConfirmed() {
        guard released > 0 else { return }
        let n = released
        released = 0
        let limit = settings.maxOutstanding
        let waiters = core.shared.withLock { s -> [Pending<Void>] in
            s.outstanding -= n
            guard !s.spaceWaiters.isEmpty, s.outstanding < limit else { return [] }
            let room = limit - s.outstanding
            let k = min(room, s.spaceWaiters.count)
            let woken = s.spaceWaiters.prefix(k).map(\.pending)
            s.spaceWaiters.removeFirst(k)
            return woken
        }
        for w in waiters { w.resume(.success(())) }
    }

    // MARK: acknowledgements

    private func settleAll(_ c: amqp_connection_state_t) {
        ackedInBatch.removeAll(keepingCapacity: true)
        for s in settleBatch where s.generation == generation && s.tag >= base {
            let idx = head + Int(s.tag - base)
            guard idx < window.count else { continue }
            let id = window[idx]
            guard id >= 0 else { continue }
            if s.ack {
                window[idx] = Self.ackPending(id)
                ackedInBatch.append(s.tag)
            } else {
                window[idx] = Self.settledMark
                subscriptions[Int(id)]?.unacked -= 1
                if amqp_basic_nack(c, Channel.consume, s.tag, 0, 0) != AMQP_STATUS_OK.rawValue {
                    lose("nack failed")
                    return
                }
            }
        }
        settleBatch.removeAll(keepingCapacity: true)
        // The settled run at the front of the window joins the deferred multiple-ack.
        while head < window.count && window[head] < 0 {
            if let id = Self.ackPendingID(window[head]) {
                if unsentAck == 0 { unsentSince = .now }
                unsentAck = base
                unsentBySub[Int(id), default: 0] += 1
            }
            head += 1
            base += 1
        }
        // Acks behind a delivery still held are written one by one, now (a multiple-ack cannot skip the held one).
        for tag in ackedInBatch where tag >= base {
            let idx = head + Int(tag - base)
            if let id = Self.ackPendingID(window[idx]) { subscriptions[Int(id)]?.unacked -= 1 }
            window[idx] = Self.settledMark
            if amqp_basic_ack(c, Channel.consume, tag, 0) != AMQP_STATUS_OK.rawValue {
                lose("ack failed")
                return
            }
        }
        if head == window.count {
            window.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > window.count {
            window.removeFirst(head)
            head = 0
        }
    }

    /// Writes the deferred multiple-ack when a consumer it covers runs short of prefetch room, or it is `ackDelay`
    /// old.
    private func flushAcksIfDue(_ c: amqp_connection_state_t) {
        guard unsentAck > 0 else { return }
        if ContinuousClock.now - unsentSince >= Self.ackDelay
            || unsentBySub.keys.contains(where: { subscriptions[$0]?.tight ?? false }) {
            flushAcks(c)
        }
    }

    private func flushAcks(_ c: amqp_connection_state_t) {
        guard unsentAck > 0 else { return }
        let tag = unsentAck
        unsentAck = 0
        for (id, n) in unsentBySub { subscriptions[id]?.unacked -= n }
        unsentBySub.removeAll(keepingCapacity: true)
        if amqp_basic_ack(c, Channel.consume, tag, 1) != AMQP_STATUS_OK.rawValue {
            lose("ack failed")
        }
    }

    // MARK: reading frames

    /// The last `readFrames` stopped because librabbitmq held nothing more (not at its limit).
    private var readDry = false
    /// Plain TCP (not TLS): poll sees all that is pending.
    private let plainSocket: Bool

    /// Reads and handles what the broker sent, without blocking. Returns the number of frames handled.
    @discardableResult
    private func readFrames(_ c: amqp_connection_state_t, limit: Int) -> Int {
        var zero = Glibc.timeval(tv_sec: 0, tv_usec: 0)
        var n = 0
        readDry = false
        defer {
            if conn != nil { amqp_maybe_release_buffers(c) }
            handOverDeliveries()
            releaseConfirmed()
        }
        while n < limit {
            // Past the first frame, take only what librabbitmq already holds: reading an empty socket costs two
            // system calls (recv, then a zero poll) to learn nothing, and the poll we sleep in sees new data as well.
            // (Not with TLS, where poll cannot see what OpenSSL may hold.)
            if n > 0 && plainSocket && amqp_frames_enqueued(c) == 0 && amqp_data_in_buffer(c) == 0 {
                readDry = true
                break
            }
            var frame = amqp_frame_t()
            let rc = amqp_simple_wait_frame_noblock(c, &frame, &zero)
            if rc == AMQP_STATUS_TIMEOUT.rawValue { break }
            if rc != AMQP_STATUS_OK.rawValue {
                lose(Self.statusText(rc))
                return n
            }
            if n == 0 { lastHeard = .now }
            n += 1
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            handleMethod(c, frame.channel, frame.payload.method)
            if conn == nil { return n }
            if n & 63 == 0 { amqp_maybe_release_buffers(c) }
        }
        return n
    }

    private func handOverDeliveries() {
        guard !handOver.isEmpty else { return }
        for (record, d) in handOver {
            if let handler = record.handler { handler(d) } else { record.continuation.yield(d) }
        }
        handOver.removeAll(keepingCapacity: true)
    }

    private func handleMethod(_ c: amqp_connection_state_t, _ channel: amqp_channel_t, _ method: amqp_method_t) {
        switch method.id {
        case AMQPMethod.basicDeliver:
            guard let d = method.decoded?.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee else { return }
            deliver(c, channel, d)
        case AMQPMethod.basicAck:
            guard channel == Channel.publish,
                  let a = method.decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee else { return }
            confirm(upTo: a.delivery_tag, multiple: a.multiple != 0)
        case AMQPMethod.basicNack:
            guard channel == Channel.publish,
                  let a = method.decoded?.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee else { return }
            if retriesNacks {
                if nackWarned {
                    confirm(upTo: a.delivery_tag, multiple: a.multiple != 0, refused: true)
                    return
                }
                nackWarned = true
                let i = a.delivery_tag >= unconfirmedBase ? unconfirmedHead + Int(a.delivery_tag - unconfirmedBase) : -1
                let last = unconfirmed.indices.contains(i)
                    ? " (the last to '\(SafeText.escape(unconfirmed[i].exchange, limit: 80))' key '\(SafeText.escape(unconfirmed[i].routingKey, limit: 80))')" : ""
                logger.warning("AMQP broker \(url) refused message(s) up to #\(a.delivery_tag)\(last) (basic.nack); publishing them again on a new channel in \(Self.nackPause) (further refusals in this round not logged)")
            } else {
                logger.warning("AMQP broker \(url) refused message(s) up to #\(a.delivery_tag) (basic.nack); they are dropped")
            }
            confirm(upTo: a.delivery_tag, multiple: a.multiple != 0, refused: true)
        case AMQPMethod.basicCancel:
            guard let a = method.decoded?.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee else { return }
            if let id = Self.subscriptionID(a.consumer_tag), let sub = subscriptions.removeValue(forKey: id) {
                logger.warning("AMQP broker \(url) cancelled the consumer of '\(sub.record.queue)' (queue deleted?)")
                sub.record.continuation.finish()
            }
        case AMQPMethod.basicReturn:
            // Only mandatory messages come back; their content frames that follow are skipped by readFrames.
            guard channel == Channel.publish,
                  let r = method.decoded?.assumingMemoryBound(to: amqp_basic_return_t.self).pointee else { return }
            returned.append((Self.string(r.exchange), Self.string(r.routing_key),
                             "\(r.reply_code) \(Self.string(r.reply_text))"))
            if returned.count > 10_000 { returned.removeFirst(returned.count - 10_000) }
        case AMQPMethod.channelClose:
            let p = method.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let code = p?.reply_code ?? 0
            let text = p.map { Self.string($0.reply_text) } ?? "channel closed"
            channelClosed(c, channel, code: code, text: text)
        case AMQPMethod.connectionClose:
            let p = method.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(c, 0, AMQPMethod.connectionCloseOk, &ok)
            lose("broker closed the connection: \(p.map { Self.string($0.reply_text) } ?? "connection.close")")
        case AMQPMethod.connectionBlocked:
            blocked = true
            logger.warning("AMQP broker \(url) blocks publishing (resource alarm); sends are held until it unblocks")
        case AMQPMethod.connectionUnblocked:
            blocked = false
            logger.notice("AMQP broker \(url) accepts publishing again")
        default:
            break
        }
    }

    private func deliver(_ c: amqp_connection_state_t, _ channel: amqp_channel_t, _ d: amqp_basic_deliver_t) {
        let tag = d.delivery_tag
        let redelivered = d.redelivered != 0
        let id = Self.subscriptionID(d.consumer_tag)
        var message = amqp_message_t()
        let r = amqp_read_message(c, channel, &message, 0)
        guard r.reply_type == AMQP_RESPONSE_NORMAL else {
            lose("reading a message failed: \(Self.replyText(r))")
            return
        }
        let count = message.body.len
        let bytes: [UInt8] = count == 0 ? [] : [UInt8](unsafeUninitializedCapacity: count) { buf, n in
            memcpy(buf.baseAddress!, message.body.bytes, count)
            n = count
        }
        var received = Message(bytes: bytes)
        if message.properties._flags != 0 {
            var skipped = 0
            received.properties = AMQPPropertyReader.read(message.properties, skipped: &skipped)
            if skipped > 0 { noteSkippedProperties(skipped) }
        }
        amqp_destroy_message(&message)
        let sub = id.flatMap { subscriptions[$0] }
        if channel == Channel.consume {
            guard let sub, tag == base + UInt64(window.count - head) else {
                // Not ours any more (cancelled): give it back to the queue.
                _ = amqp_basic_reject(c, channel, tag, 1)
                if tag == base + UInt64(window.count - head) { window.append(Self.settledMark) }
                return
            }
            window.append(Int32(truncatingIfNeeded: sub.record.id))
            subscriptions[sub.record.id]?.unacked += 1
            handOver.append((sub.record,
                             Delivery(message: received, queue: sub.record.queue, redelivered: redelivered,
                                      tag: tag, generation: generation, settler: settler)))
        } else if let sub {
            handOver.append((sub.record, Delivery(message: received, queue: sub.record.queue)))
        }
    }

    private var skippedPropertiesWarnedAt: ContinuousClock.Instant? = nil
    private var skippedProperties = 0

    /// Properties of a delivery that could not be read (bad UTF-8, too long, kinds we do not carry) were left out;
    /// the message itself was delivered. One log line per 10 s at most.
    private func noteSkippedProperties(_ n: Int) {
        skippedProperties += n
        let now = ContinuousClock.now
        if skippedPropertiesWarnedAt.map({ now - $0 > .seconds(10) }) ?? true {
            logger.warning("AMQP \(url): \(skippedProperties) message properties or headers left out (not UTF-8, over their size limit, or of a kind not carried); the messages were delivered")
            skippedProperties = 0
            skippedPropertiesWarnedAt = now
        }
    }

    /// The text of the last time the broker closed the publishing channel.
    private var lastPublishRefusal = ""

    private func channelClosed(_ c: amqp_connection_state_t, _ channel: amqp_channel_t, code: UInt16, text: String) {
        var ok = amqp_channel_close_ok_t(dummy: 0)
        _ = amqp_send_method(c, channel, AMQPMethod.channelCloseOk, &ok)
        switch channel {
        case Channel.publish:
            // Typically a send to an exchange that does not exist. The broker dropped everything it got on the
            // channel since; publish those again on a fresh channel, except the ones to the missing exchange.
            // "NOT_FOUND - no exchange 'x' in vhost 'v'", "ACCESS_REFUSED - cannot publish to internal exchange 'x'
            // in vhost 'v'": the messages for that exchange would close the channel again; drop them rather than
            // loop. The name cannot be cut out of the text (it may hold quotes, and the broker truncates its reply
            // text to 255 bytes): the first unconfirmed message whose exchange the text fits is the one refused.
            var missing: String? = nil
            // Compared as Unicode scalars: a name may start with a combining mark, which joins the quote before it
            // into one Character, so that a search by Characters would not find "exchange '".
            let scalars = text.unicodeScalars
            if code == 404 || code == 403, let r = scalars.firstRange(of: "exchange '".unicodeScalars) {
                var rest = scalars[r.upperBound...]
                let vhost = "' in vhost '\(url.vhost)'".unicodeScalars
                let complete = scalars.count >= vhost.count && scalars.suffix(vhost.count).elementsEqual(vhost)
                // RabbitMQ cuts a long text to 255 bytes and ends it with "...", maybe in the middle of a character
                // (which then decodes as U+FFFD).
                if !complete {
                    if rest.suffix(3).elementsEqual("...".unicodeScalars) { rest.removeLast(3) }
                    while rest.last == "\u{FFFD}" { rest.removeLast() }
                }
                func fits(_ exchange: String) -> Bool {
                    guard !exchange.isEmpty else { return false }
                    let full = Array(exchange.unicodeScalars) + Array(vhost)
                    return complete ? rest.elementsEqual(full) : full.starts(with: rest)
                }
                for i in unconfirmedHead..<unconfirmed.count where !confirmedFlags[i] && fits(unconfirmed[i].exchange) {
                    missing = unconfirmed[i].exchange
                    break
                }
            }
            if missing == nil && (code == 404 || code == 403) && text == lastPublishRefusal {
                // Refused twice alike and still not recognised: the first message to a named exchange is the one
                // (the default exchange never refuses); dropping it ends the loop.
                missing = unconfirmed[unconfirmedHead...].first { !$0.exchange.isEmpty }?.exchange
            }
            lastPublishRefusal = text
            // "PRECONDITION_FAILED - fast reply consumer does not exist": a request with reply-to
            // amq.rabbitmq.reply-to published while this connection consumes no direct replies (its reply
            // subscription was cancelled, or never made). Published again it would close the channel again, once
            // per turn, for ever: those requests fail instead.
            let noReplyConsumer = code == 406 && text.contains("fast reply consumer does not exist")
                && !subscriptions.values.contains { $0.record.directReplyTo && $0.started }
            var again: [Outgoing] = []
            var dropped = 0
            for i in unconfirmedHead..<unconfirmed.count where !confirmedFlags[i] {
                if let m = missing, unconfirmed[i].exchange == m {
                    dropped += 1
                    unconfirmed[i].waiter?.resume(.failure(MsgFloError(code == 404 ? .notFound : .accessRefused,
                                                                         "send on \(url) failed: \(code) \(text)")))
                } else if noReplyConsumer, unconfirmed[i].properties?.replyTo == AMQPTransport.directReplyTo {
                    dropped += 1
                    unconfirmed[i].waiter?.resume(.failure(MsgFloError(.preconditionFailed,
                        "send on \(url) failed: reply-to \(AMQPTransport.directReplyTo) but no reply subscription of this connection is open (\(code) \(text))")))
                } else {
                    again.append(unconfirmed[i])
                }
            }
            released += dropped
            unconfirmed.removeAll(keepingCapacity: true)
            confirmedFlags.removeAll(keepingCapacity: true)
            unconfirmedHead = 0
            logger.warning("AMQP: sending on \(url) failed: \(code) \(text); \(dropped) message(s) dropped")
            resend = again + resend
            _ = reopenPublishChannel(c, close: false)
        case Channel.control:
            reopen(c, channel)
        default:
            // A consumer channel: start afresh on a new connection so every consumer is set up again.
            lose("broker closed channel \(channel): \(code) \(text)")
        }
    }

    /// Opens the publishing channel again in confirm mode (after closing it when `close`) and restarts the direct
    /// reply-to consumers that lived on it. Nothing may be waiting for a confirm on it. False: the connection is lost.
    private func reopenPublishChannel(_ c: amqp_connection_state_t, close: Bool) -> Bool {
        renewPublishing = false
        var r = amqp_rpc_reply_t()
        r.reply_type = AMQP_RESPONSE_NORMAL
        if close { r = amqp_channel_close(c, Channel.publish, Int32(AMQP_REPLY_SUCCESS)) }
        if r.reply_type == AMQP_RESPONSE_NORMAL {
            amqp_channel_open(c, Channel.publish)
            r = amqp_get_rpc_reply(c)
        }
        if r.reply_type == AMQP_RESPONSE_NORMAL {
            amqp_confirm_select(c, Channel.publish)
            r = amqp_get_rpc_reply(c)
        }
        guard r.reply_type == AMQP_RESPONSE_NORMAL else {
            lose("cannot reopen the publishing channel: \(Self.replyText(r))")
            return false
        }
        unconfirmed.removeAll(keepingCapacity: true)
        confirmedFlags.removeAll(keepingCapacity: true)
        unconfirmedHead = 0
        unconfirmedBase = 1
        nextSeq = 1
        // A direct reply-to consumer lived on the closed channel: consume again (calls waiting on the old
        // reply-to time out; new ones use the new consumer).
        for (id, sub) in subscriptions where sub.record.directReplyTo {
            subscriptions[id]?.started = false
            do { try startConsumer(c, id) } catch {
                lose("cannot consume direct replies again after the publishing channel closed")
                return false
            }
        }
        return true
    }

    // MARK: operations

    private func runOps(_ c: amqp_connection_state_t) {
        var i = 0
        while i < opBatch.count {
            let q = opBatch[i]
            do {
                let result = try execute(c, q.op)
                q.pending.resume(.success(result))
            } catch .connectionLost(let why) {
                lose(why)
                // Not done: the rest (this one included) waits for the next connection.
                let rest = Array(opBatch[i...])
                core.shared.withLock { s in s.ops.insert(contentsOf: rest, at: 0) }
                opBatch.removeAll(keepingCapacity: true)
                return
            } catch {
                q.pending.resume(.failure(error.asMsgFloError(q.op.summary, url)))
            }
            i += 1
            // Keep the socket drained between operations (a long list of declarations must not stall deliveries).
            readFrames(c, limit: 256)
            if conn == nil {
                let rest = Array(opBatch[i...])
                core.shared.withLock { s in s.ops.insert(contentsOf: rest, at: 0) }
                opBatch.removeAll(keepingCapacity: true)
                return
            }
        }
        opBatch.removeAll(keepingCapacity: true)
    }

    private func execute(_ c: amqp_connection_state_t, _ op: Op) throws(CallError) -> OpResult {
        switch op {
        case .declareInport(let q, let persistent):
            let item = TopologyItem.inport(q, persistent: persistent)
            try apply(c, item)
            record(item)
        case .declareOutport(let q, let persistent):
            let item = TopologyItem.outport(q, persistent: persistent)
            try apply(c, item)
            record(item)
        case .declareDiscovery:
            try apply(c, .discovery)
            record(.discovery)
        case .declareQuorumInport(let q):
            try apply(c, .quorumInport(q))
            record(.quorumInport(q))
        case .holdExclusive(let q):
            do {
                try call(c) { amqp_queue_declare(c, Channel.control, $0(q), 0, 0, 1, 1, amqp_empty_table) }
            } catch .channel(let code, _) where code == 405 {
                return .exists(false)  // RESOURCE_LOCKED: another connection holds it
            }
            return .exists(true)
        case .bind(let b):
            try apply(c, .binding(b))
            record(.binding(b))
        case .unbind(let b):
            topology.removeAll { $0 == .binding(b) }
            try unbind(c, b)
        case .consume(let id):
            do {
                try startConsumer(c, id)
            } catch {
                subscriptions.removeValue(forKey: id)
                throw error
            }
        case .cancel(let id):
            try stopConsumer(c, id)
        case .depth(let q):
            return .depth(try queueDeclare(c, q, passive: true, durable: false, autoDelete: false, deadLetter: nil))
        case .stats(let q):
            var messages = 0, consumers = 0
            try call(c) { b in
                let ok = amqp_queue_declare(c, Channel.control, b(q), 1, 0, 0, 0, amqp_empty_table)
                if let ok {
                    messages = Int(ok.pointee.message_count)
                    consumers = Int(ok.pointee.consumer_count)
                }
                return ok
            }
            return .stats(messages: messages, consumers: consumers)
        case .exchangeExists(let x):
            do {
                try call(c) {
                    amqp_exchange_declare(c, Channel.control, $0(x), $0("fanout"), 1, 0, 0, 0, amqp_empty_table)
                }
            } catch .channel(let code, _) where code == 404 {
                return .exists(false)
            }
            return .exists(true)
        }
        return .done
    }

    private func record(_ item: TopologyItem) {
        if !topology.contains(item) { topology.append(item) }
    }

    private func apply(_ c: amqp_connection_state_t, _ item: TopologyItem) throws(CallError) {
        switch item {
        case .inport(let q, let persistent):
            try tolerant("queue", q) { () throws(CallError) in
                _ = try queueDeclare(c, q, passive: false, durable: persistent, autoDelete: !persistent,
                                     deadLetter: "dead-" + q)
            } passive: { () throws(CallError) in
                _ = try queueDeclare(c, q, passive: true, durable: false, autoDelete: false, deadLetter: nil)
            }
            try tolerant("exchange", q) { () throws(CallError) in
                try exchangeDeclare(c, q, type: "fanout", durable: persistent, autoDelete: !persistent)
            } passive: {}
            try call(c) { amqp_queue_bind(c, Channel.control, $0(q), $0(q), $0(""), amqp_empty_table) }
        case .quorumInport(let q):
            do {
                _ = try queueDeclare(c, q, passive: false, durable: true, autoDelete: false, deadLetter: "dead-" + q,
                                     quorum: true)
            } catch .channel(let code, let text) where code == 406 {
                // An existing queue of another type (or other arguments): RabbitMQ cannot change it in place.
                let vhost = settings.url.vhost
                throw .channel(code: code, text: "queue '\(q)' exists with other arguments than a quorum queue's (\(text)). "
                               + "A queue's type cannot change: drain it, delete it (rabbitmqctl delete_queue '\(q)' -p '\(vhost)') "
                               + "and start the participant again, or use it as it is by leaving out queue-type=quorum")
            }
            try tolerant("exchange", q) { () throws(CallError) in
                try exchangeDeclare(c, q, type: "fanout", durable: true, autoDelete: false)
            } passive: {}
            try call(c) { amqp_queue_bind(c, Channel.control, $0(q), $0(q), $0(""), amqp_empty_table) }
        case .outport(let q, let persistent):
            try tolerant("exchange", q) { () throws(CallError) in
                try exchangeDeclare(c, q, type: "fanout", durable: persistent, autoDelete: !persistent)
            } passive: {}
        case .discovery:
            try tolerant("queue", discoveryQueue) { () throws(CallError) in
                _ = try queueDeclare(c, discoveryQueue, passive: false, durable: true, autoDelete: false, deadLetter: nil)
            } passive: { () throws(CallError) in
                _ = try queueDeclare(c, discoveryQueue, passive: true, durable: false, autoDelete: false, deadLetter: nil)
            }
        case .binding(let b):
            switch b.kind {
            case .pubsub:
                try call(c) { amqp_queue_bind(c, Channel.control, $0(b.tgt), $0(b.src), $0(""), amqp_empty_table) }
            case .roundRobin:
                let direct = "out-" + b.src
                try tolerant("exchange", direct) { () throws(CallError) in
                    try exchangeDeclare(c, direct, type: "direct", durable: true, autoDelete: false)
                } passive: {}
                try call(c) { amqp_exchange_bind(c, Channel.control, $0(direct), $0(b.src), $0(""), amqp_empty_table) }
                try call(c) { amqp_queue_bind(c, Channel.control, $0(b.tgt), $0(direct), $0(""), amqp_empty_table) }
            case .deadLetter:
                let dead = "dead-" + b.src
                try tolerant("exchange", dead) { () throws(CallError) in
                    try exchangeDeclare(c, dead, type: "fanout", durable: true, autoDelete: false)
                } passive: {}
                try call(c) { amqp_queue_bind(c, Channel.control, $0(b.tgt), $0(dead), $0(""), amqp_empty_table) }
            }
        }
    }

    private func unbind(_ c: amqp_connection_state_t, _ b: Binding) throws(CallError) {
        let exchange = switch b.kind {
        case .pubsub: b.src
        case .roundRobin: "out-" + b.src
        case .deadLetter: "dead-" + b.src
        }
        try call(c) { amqp_queue_unbind(c, Channel.control, $0(b.tgt), $0(exchange), $0(""), amqp_empty_table) }
    }

    /// Runs a declaration; when the broker refuses it because the thing exists with other flags (406), warns once
    /// and goes on with the existing one (checked with `passive`).
    private func tolerant(_ kind: String, _ name: String, _ declare: () throws(CallError) -> Void,
                          passive: () throws(CallError) -> Void) throws(CallError) {
        do {
            try declare()
        } catch .channel(let code, let text) where code == 406 {
            logger.warning("AMQP: \(kind) '\(name)' exists on \(url) with other flags than msgflo's (\(text)); using it as it is")
            try passive()
        }
    }

    private func queueDeclare(_ c: amqp_connection_state_t, _ q: String, passive: Bool, durable: Bool,
                              autoDelete: Bool, deadLetter: String?, quorum: Bool = false) throws(CallError) -> Int {
        var count = 0
        try call(c) { b in
            var args = amqp_empty_table
            var entries = [amqp_table_entry_t](repeating: amqp_table_entry_t(), count: 2)
            var n = 0
            if let deadLetter {
                entries[n].key = b("x-dead-letter-exchange")
                entries[n].value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                entries[n].value.value.bytes = b(deadLetter)
                n += 1
            }
            if quorum {
                entries[n].key = b("x-queue-type")
                entries[n].value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                entries[n].value.value.bytes = b("quorum")
                n += 1
            }
            return entries.withUnsafeMutableBufferPointer { e in
                if n > 0 { args = amqp_table_t(num_entries: Int32(n), entries: e.baseAddress) }
                let ok = amqp_queue_declare(c, Channel.control, b(q), passive ? 1 : 0, durable ? 1 : 0, 0,
                                            autoDelete ? 1 : 0, args)
                if let ok { count = Int(ok.pointee.message_count) }
                return ok
            }
        }
        return count
    }

    private func exchangeDeclare(_ c: amqp_connection_state_t, _ name: String, type: String, durable: Bool,
                                 autoDelete: Bool) throws(CallError) {
        try call(c) {
            amqp_exchange_declare(c, Channel.control, $0(name), $0(type), 0, durable ? 1 : 0, autoDelete ? 1 : 0, 0,
                                  amqp_empty_table)
        }
    }

    private func startConsumer(_ c: amqp_connection_state_t, _ id: Int) throws(CallError) {
        guard var sub = subscriptions[id], !sub.started else { return }
        let r = sub.record
        let tag = "msgflo-\(id)"
        if r.directReplyTo {
            try call(c, on: Channel.publish) {
                amqp_basic_consume(c, Channel.publish, $0(r.queue), $0(tag), 0, 1, 0, amqp_empty_table)
            }
        } else if r.isTap {
            try tolerant("exchange", r.queue) { () throws(CallError) in
                try exchangeDeclare(c, r.queue, type: "fanout", durable: true, autoDelete: false)
            } passive: {}
            var name = ""
            try call(c) { b in
                let ok = amqp_queue_declare(c, Channel.control, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table)
                if let ok { name = Self.string(ok.pointee.queue) }
                return ok
            }
            try call(c) { amqp_queue_bind(c, Channel.control, $0(name), $0(r.queue), $0(""), amqp_empty_table) }
            try call(c, on: Channel.tap) { amqp_basic_consume(c, Channel.tap, $0(name), $0(tag), 0, 1, 1, amqp_empty_table) }
            sub.tapQueue = name
        } else {
            // Check first on the control channel: a consume of a missing queue would close the consumer channel.
            _ = try queueDeclare(c, r.queue, passive: true, durable: false, autoDelete: false, deadLetter: nil)
            try call(c, on: Channel.consume) { _ in amqp_basic_qos(c, Channel.consume, 0, UInt16(clamping: r.prefetch), 0) }
            try call(c, on: Channel.consume) { amqp_basic_consume(c, Channel.consume, $0(r.queue), $0(tag), 0, 0, 0, amqp_empty_table) }
        }
        sub.started = true
        subscriptions[id] = sub
    }

    private func stopConsumer(_ c: amqp_connection_state_t, _ id: Int) throws(CallError) {
        guard let sub = subscriptions.removeValue(forKey: id) else { return }
        defer { sub.record.continuation.finish() }
        guard sub.started else { return }
        let ch = sub.record.directReplyTo ? Channel.publish : sub.record.isTap ? Channel.tap : Channel.consume
        try call(c, on: ch) { amqp_basic_cancel(c, ch, $0("msgflo-\(id)")) }
        if !sub.record.isTap && !sub.record.directReplyTo {
            // What the consumer held and did not settle goes back to the queue.
            for i in head..<window.count where window[i] == Int32(truncatingIfNeeded: id) {
                window[i] = Self.settledMark
                if amqp_basic_reject(c, ch, base + UInt64(i - head), 1) != AMQP_STATUS_OK.rawValue {
                    throw .connectionLost("reject failed")
                }
            }
        }
    }

    // MARK: calling librabbitmq

    /// Runs an RPC with a helper that makes `amqp_bytes_t` of Swift strings (kept alive for the call), then turns
    /// the reply into a `CallError`. Channel errors reopen the channel.
    private func call<R>(_ c: amqp_connection_state_t, on channel: amqp_channel_t = Channel.control,
                         _ body: ((String) -> amqp_bytes_t) -> UnsafeMutablePointer<R>?) throws(CallError) {
        var keep: [UnsafeMutablePointer<CChar>] = []
        defer { keep.forEach { free($0) } }
        _ = body { s in
            let p = strdup(s)!
            keep.append(p)
            return amqp_bytes_t(len: strlen(p), bytes: UnsafeMutableRawPointer(p))
        }
        let r = amqp_get_rpc_reply(c)
        try check(c, r, channel)
    }

    private func check(_ c: amqp_connection_state_t, _ r: amqp_rpc_reply_t, _ channel: amqp_channel_t) throws(CallError) {
        switch r.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if r.reply.id == AMQPMethod.channelClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self) {
                let code = p.pointee.reply_code
                let text = Self.string(p.pointee.reply_text)
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = amqp_send_method(c, channel, AMQPMethod.channelCloseOk, &ok)
                guard channel == Channel.control else {
                    // A consumer channel: every consumer on it is gone; start afresh on a new connection.
                    throw .connectionLost("broker closed channel \(channel): \(code) \(text)")
                }
                try reopenChecked(c, Channel.control)
                throw .channel(code: code, text: text)
            }
            if r.reply.id == AMQPMethod.connectionClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self) {
                var ok = amqp_connection_close_ok_t(dummy: 0)
                _ = amqp_send_method(c, 0, AMQPMethod.connectionCloseOk, &ok)
                throw .connectionLost("broker closed the connection: \(Self.string(p.pointee.reply_text))")
            }
            throw .connectionLost("unexpected reply \(r.reply.id)")
        default:
            if r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && CallError.isArgumentStatus(r.library_error) {
                throw .invalid(Self.replyText(r))
            }
            throw .connectionLost(Self.replyText(r))
        }
    }

    private func reopen(_ c: amqp_connection_state_t, _ ch: amqp_channel_t) {
        do { try reopenChecked(c, ch) } catch { lose("cannot reopen channel \(ch)") }
    }

    private func reopenChecked(_ c: amqp_connection_state_t, _ ch: amqp_channel_t) throws(CallError) {
        amqp_channel_open(c, ch)
        let r = amqp_get_rpc_reply(c)
        if r.reply_type != AMQP_RESPONSE_NORMAL {
            throw .connectionLost("cannot reopen channel \(ch): \(Self.replyText(r))")
        }
    }

    // MARK: helpers

    static func string(_ b: amqp_bytes_t) -> String {
        guard b.len > 0, let p = b.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: b.len), as: UTF8.self)
    }

    static func statusText(_ rc: Int32) -> String {
        String(cString: amqp_error_string2(rc))
    }

    static func replyText(_ r: amqp_rpc_reply_t) -> String {
        switch r.reply_type {
        case AMQP_RESPONSE_NORMAL: return "ok"
        case AMQP_RESPONSE_NONE: return "no reply"
        case AMQP_RESPONSE_LIBRARY_EXCEPTION: return statusText(r.library_error)
        default:
            if r.reply.id == AMQPMethod.connectionClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self) {
                return "\(p.pointee.reply_code) \(string(p.pointee.reply_text))"
            }
            if r.reply.id == AMQPMethod.channelClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self) {
                return "\(p.pointee.reply_code) \(string(p.pointee.reply_text))"
            }
            return "server error (method \(r.reply.id))"
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The subscription id in a consumer tag `msgflo-<id>`.
    static func subscriptionID(_ tag: amqp_bytes_t) -> Int? {
        guard tag.len > 7, tag.len < 27, let p = tag.bytes?.assumingMemoryBound(to: UInt8.self) else { return nil }
        var v = 0
        for i in 7..<tag.len {
            let d = Int(p[i]) - 48
            guard d >= 0 && d <= 9 else { return nil }
            v = v * 10 + d
        }
        return v
    }
}
