import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

// Connecting, losing a connection, reconnecting with backoff, and restoring the topology (AMQPTopology's plan).
extension AMQPLoop {
    // MARK: connecting

    func timeval(_ d: Duration) -> Glibc.timeval {
        let (s, a) = d.components
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int(a / 1_000_000_000_000))
    }

    /// Connects to the first address that answers, in order; with one address, exactly `openConnection()`.
    func openFirst() throws(MsgFloError) {
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
    func openNext() throws(MsgFloError) {
        var lastError: MsgFloError?
        let lost = endpointIndex
        for step in 1...endpoints.count {
            endpointIndex = (lost + step) % endpoints.count
            url = settings.url.at(endpoints[endpointIndex])
            do { return try openConnection() } catch { lastError = error }
        }
        throw lastError!
    }

    func openConnection() throws(MsgFloError) {
        guard let c = amqp_new_connection() else {
            throw MsgFloError(.connectionFailed, "cannot connect to \(url): out of memory")
        }
        var ok = false
        defer {
            // No longer interruptible from outside before the socket can go (with the connection, on failure).
            core.connectingSocket.withLock { $0 = -1 }
            if !ok { amqp_destroy_connection(c) }
        }
        let tls = url.scheme == .amqps
        guard let socket = tls ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c) else {
            throw MsgFloError(.connectionFailed, "cannot connect to \(url): cannot create a socket")
        }
        gathering = !tls && cmsgflo_gather_attach(gather, socket) == 1
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
        // The handshake blocks this thread: a close (or a cancelled connect) may cut it short by shutting the
        // socket down from its own thread (AMQPCore.interruptConnect).
        // First published, then the close flag read: a close that sets the flag after this read finds the socket.
        core.connectingSocket.withLock { $0 = amqp_get_sockfd(c) }
        if core.shared.withLock({ $0.closeRequested }) { throw MsgFloError(.closed, "connecting to \(url): the transport was closed") }
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
        core.liveSocket.withLock { $0 = amqp_get_sockfd(c) }
        bindingChannelsOpen = false
        blocked = false
        lastHeard = .now
        window.newConnection()
    }

    func loginError(_ reply: amqp_rpc_reply_t) -> MsgFloError {
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
    func lose(_ reason: String) {
        guard let c = conn else { return }
        conn = nil
        core.liveSocket.withLock { $0 = -1 }
        amqp_destroy_connection(c)
        logger.warning("AMQP connection to \(url) lost: \(reason); reconnecting")
        // Unconfirmed messages go out again first (the broker may or may not have them: at-least-once).
        resend = confirms.takeOutstanding() + nacked + resend
        nacked.removeAll()
        nackRetryAt = nil
        renewPublishing = false
        nackWarned = false
        returned.removeAll()
        // Content cut off with the connection: the broker delivers those messages again.
        content.reset()
        window.connectionLost()
        topology.connectionLost()
        lostReason = reason
    }

    /// Tries again with backoff until connected (true) or closed (false). Fails queued calls past their deadline.
    func reconnect() -> Bool {
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
    func closingWhileDown() -> Bool {
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
        for r in newSubs { topology.add(r) }
        for op in expired {
            op.pending.resume(.failure(MsgFloError(.connectionLost,
                "\(op.op.summary) failed: broker \(url) unreachable for \(settings.timeouts.reconnectWait): \(lostReason)")))
        }
        return closing
    }

    /// Declares, binds and consumes again what was set up on the lost connection. The declarations go one at a
    /// time; the bindings, once all are declared, pipelined as the coordinator's are (a graph's edges are many);
    /// then the consumers.
    ///
    /// A reconnect can be quicker than the broker's cleanup of the lost connection: its auto-delete queues and
    /// exchanges (non-persistent ports) go when their last consumer or binding does, which may be after this
    /// connection declared them again, and the binds or consumes that follow find nothing (404). Then the pass is
    /// made again (declarations and bindings are idempotent; consumers already started are left), after 100, 200,
    /// … ms, up to ``restorePasses`` passes; only the last one's failures are logged.
    func restore(_ c: amqp_connection_state_t) -> Bool {
        for pass in 1...Self.restorePasses {
            guard let missing = restorePass(c, final: pass == Self.restorePasses) else { return false }
            if !missing { return true }
            let waited = io.pause(for: .milliseconds(100 * pass)) { core.shared.withLock { $0.closeRequested } }
            if !waited || conn == nil { return conn != nil }
        }
        return true
    }

    static let restorePasses = 6

    /// One pass of ``restore(_:)``: nil when the connection was lost, else whether something was missing (404).
    func restorePass(_ c: amqp_connection_state_t, final: Bool) -> Bool? {
        var binds: [QueuedOp] = []
        var missing = false
        do {
            for step in topology.restorePlan {
                if case .consume = step, !binds.isEmpty {
                    guard let gone = restoreBindings(c, binds, final: final) else { return nil }
                    missing = missing || gone
                    binds = []
                }
                switch step {
                case .declare(let item) where item.pipelined != nil:
                    binds.append(QueuedOp(op: item, pending: Pending(), deadline: .now))
                case .declare(let item):
                    do {
                        try apply(c, item)
                    } catch .channel(let code, let text) {
                        missing = missing || code == 404
                        if final || code != 404 {
                            logger.warning("AMQP: could not restore (\(item.summary)) on \(url) after reconnect: \(code) \(text)")
                        }
                    }
                case .consume(let id):
                    do {
                        try startConsumer(c, id)
                    } catch .channel(let code, let text) {
                        missing = missing || code == 404
                        if final || code != 404 {
                            logger.warning("AMQP: could not consume '\(topology.consumers[id]?.record.queue ?? "")' again on \(url) after reconnect: \(code) \(text)")
                        }
                    }
                }
            }
        } catch .connectionLost(let why) {
            lose(why)
            return nil
        } catch {}
        guard !binds.isEmpty else { return missing }
        guard let gone = restoreBindings(c, binds, final: final) else { return nil }
        return missing || gone
    }

    /// Binds again, pipelined; a refused one is logged (as a declaration that fails is; a missing exchange or
    /// queue only on the `final` pass). Nil when the connection was lost meanwhile (the next connection restores
    /// them all again), else whether a queue or exchange was missing.
    func restoreBindings(_ c: amqp_connection_state_t, _ binds: [QueuedOp], final: Bool) -> Bool? {
        _ = runPipelined(c, binds[...])
        if conn == nil { return nil }
        var missing = false
        for q in binds {
            guard case .failure(let e)? = q.pending.settled else { continue }
            missing = missing || e.code == .notFound
            if final || e.code != .notFound {
                logger.warning("AMQP: could not restore (\(q.op.summary)) on \(url) after reconnect: \(e)")
            }
        }
        return missing
    }
}
