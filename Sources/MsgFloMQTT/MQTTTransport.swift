import Logging
import MsgFlo
import MsgFloIOThread
import Synchronization

/// The ``Transport`` over MQTT 3.1.1, on libmosquitto, with msgflo's MQTT layout:
///
/// - The topic is the queue string as written. Publishes use QoS 0 without retain (msgflo's choice) unless the URL
///   says `?qos=1` (or 2), which also makes the session persistent (see ``MQTTOptions``).
/// - Declarations create nothing (MQTT has no queues). With a persistent session a declared inport is subscribed at
///   once, so the broker keeps its messages for this client; they wait in the transport until it is consumed.
/// - `consume` and `subscribeData` subscribe the topic (MQTT wildcards `+` and `#` allowed). Several consumers, taps
///   and router edges share one broker subscription. At QoS 0 `ack` and `nack` do nothing.
/// - QoS 1 and 2: libmosquitto acknowledges each message to the broker as it reads it, so the transport bounds what
///   it holds instead (``MQTTFlowControl``): publishes go out on a second connection (a clean session), and the
///   consuming connection stops reading its socket while its consumers hold as many messages as their prefetch
///   allows in total, a message being held until it is settled and every publish made by then is confirmed by the
///   broker. A `kill -9` loses at most that many. `close()` drains: it reads nothing more, waits (up to the operation
///   timeout without progress) until every message read is settled and every publish confirmed, then disconnects:
///   nothing is lost.
/// - A `pubsub` binding is an in-process router: it subscribes the source and republishes every payload, byte for
///   byte, to the target. It lives as long as this transport. `roundRobin` and `deadLetter` are refused.
/// - When the broker goes away the transport reconnects with backoff (0.1 s doubling to 5 s), subscribes everything
///   again and reports `.reconnecting` then `.connected` on ``stateUpdates()``; subscriptions carry on. Messages sent
///   meanwhile wait in a bounded buffer (10 000 messages, 64 MiB) and go out in order once it is back; when the buffer
///   is full `send` throws rather than drop in silence.
package final class MQTTTransport: Transport {
    package let broker: BrokerURL
    package let options: MQTTOptions
    let connection: MQTTConnection
    /// QoS > 0: the connection publishes go out on (see ``MQTTFlowControl``).
    let publisher: MQTTConnection?
    let flow: MQTTFlowControl?
    let drainTimeout: Duration
    let logger: Logger
    let routes = Mutex<[Binding: Int]>([:])
    /// Standby coordinators: this instance's claim in the election (MQTTLeaderLock.swift), once prepared.
    let leaderLock = Mutex<MQTTLeaderLock?>(nil)

    /// Makes a transport for an `mqtt://` or `mqtts://` URL. Throws a one-line error for options it cannot use.
    package init(broker: BrokerURL, timeouts: TransportTimeouts = TransportTimeouts(),
                logger: Logger) throws {
        let options = try MQTTOptions(broker)
        self.broker = broker
        self.options = options
        self.logger = logger
        drainTimeout = timeouts.operation
        if options.qos > 0 {
            let wake = WakeTarget()
            let flow = MQTTFlowControl { wake.signal() }
            var publishing = options
            publishing.clientId = nil
            publishing.cleanSession = true
            let publisher = try MQTTConnection(broker: broker, options: publishing, timeouts: timeouts, logger: logger,
                                               flow: flow, isPublisher: true)
            connection = try MQTTConnection(broker: broker, options: options, timeouts: timeouts, logger: logger,
                                            flow: flow, publisher: publisher)
            wake.fd.store(connection.io.wakeDescriptor, ordering: .releasing)
            self.flow = flow
            self.publisher = publisher
        } else {
            connection = try MQTTConnection(broker: broker, options: options, timeouts: timeouts, logger: logger)
            flow = nil
            publisher = nil
        }
    }

    deinit {
        connection.shutdown()
        publisher?.shutdown()
    }

    /// Connects (the publishing connection first at QoS > 0). Cancelled while it waits, it fails `.cancelled` at
    /// once and the transport is closed.
    package func connect() async throws {
        if let publisher {
            do { try await publisher.connect() } catch let e as MsgFloError where e.code == .cancelled {
                connection.shutdown()
                throw e
            }
            do { try await connection.connect() } catch {
                await publisher.close()
                throw error
            }
        } else {
            try await connection.connect()
        }
    }

    /// Closes. Every waiting call fails `.closed` at once. At QoS > 0 it drains first: no more reading, then (up to the
    /// operation timeout without progress) until every message read is settled and every publish is confirmed by the
    /// broker; only then DISCONNECT. It runs to its end in a cancelled task too.
    package func close() async {
        connection.failWaiters()
        if let lock = leaderLock.withLock({ $0 }), lock.state.withLock({ $0.firstClaim != nil }) {
            // A graceful end sends no will: clear the claim, so that a standby takes over at once.
            _ = try? connection.publishRetained(lock.topic, [])
            await connection.nap(.milliseconds(100))
        }
        if let flow, let publisher, connection.connectionState != .closed {
            connection.pauseReading()
            // As long as the broker keeps confirming (a long queue of publishes takes its time); the operation
            // timeout without progress ends it.
            var progress = (flow.inHand, flow.confirmed.load(ordering: .acquiring))
            var deadline = ContinuousClock.now + drainTimeout
            while !flow.isDrained && ContinuousClock.now < deadline && connection.connectionState != .closed {
                await connection.nap(.milliseconds(2))
                let now = (flow.inHand, flow.confirmed.load(ordering: .acquiring))
                if now != progress {
                    progress = now
                    deadline = ContinuousClock.now + drainTimeout
                }
            }
            if !flow.isDrained {
                logger.warning("MQTT \(broker): closing with \(flow.inHand) messages in hand and \(flow.unconfirmed) publishes not confirmed by the broker")
            }
            await connection.close()
            await publisher.close()
            return
        }
        await connection.close()
        await publisher?.close()
    }

    /// Publishes not yet confirmed by the broker (QoS > 0; 0 at QoS 0, where nothing is confirmed).
    package var unconfirmedPublishes: Int { flow?.unconfirmed ?? 0 }

    /// Topics, not queues: bindings are routes this transport keeps (the coordinator routes or asks participants),
    /// workers share only in pools, the broker counts nothing and keeps nothing for a subscriber that is not there
    /// (a persistent session aside), no dead-lettering, and no message comes back once read (a consumer that stops
    /// must still handle what it was given). A prefetch holds only at QoS > 0 (``MQTTFlowControl``); properties
    /// travel with protocol 5. The leader lock is a retained claim with a last will (MQTTLeaderLock.swift).
    package var capabilities: TransportCapabilities {
        var c: TransportCapabilities = [.exclusiveLock]
        if options.qos > 0 { c.insert(.prefetch) }
        if options.protocolVersion == 5 { c.insert(.messageProperties) }
        return c
    }

    package var preferredExecutor: (any TaskExecutor)? { connection.executor }

    package var state: ConnectionState { connection.connectionState }
    package func stateUpdates() -> AsyncStream<ConnectionState> { connection.stateUpdates() }

    package func declareInport(_ queue: String, options: QueueOptions) async throws {
        try WireName.check(queue, .mqtt, use: .filter, what: "topic filter")
        if let pool = options.pool { try pooled(queue, pool) }
        try await connection.declare(queue)
    }

    package func declareOutport(_ queue: String, options: QueueOptions) async throws {
        try connection.checkOpen()
    }

    package func declareDiscoveryQueue() async throws { try connection.checkOpen() }

    package func send(toOutport queue: String, _ message: Message) async throws {
        try WireName.check(queue, .mqtt, what: "topic")
        try (publisher ?? connection).publish(queue, message.bytes, properties: try properties(of: message, to: queue))
    }

    package func send(toInport queue: String, _ message: Message) async throws {
        try WireName.check(queue, .mqtt, what: "topic")
        try (publisher ?? connection).publish(queue, message.bytes, properties: try properties(of: message, to: queue))
    }

    /// The properties to send, checked; nil for none. MQTT 3.1.1 cannot carry them: the send fails rather than
    /// drop them in silence.
    private func properties(of message: Message, to topic: String) throws(MsgFloError) -> MessageProperties? {
        let p = message.properties
        if p.isEmpty { return nil }
        guard options.protocolVersion == 5 else {
            throw MsgFloError(.unsupported, "MQTT 3.1.1 (\(broker)) cannot carry message properties (reply-to, "
                              + "correlation id, headers, …) of the message to '\(WireName.shown(topic))': "
                              + "connect with ?protocol=5, or send without them")
        }
        try p.check()
        if let r = p.replyTo { try WireName.check(r, .mqtt, what: "response topic") }
        return p
    }

    /// MQTT 5: a private response topic (`msgflo/reply/<random>`), subscribed. MQTT 3.1.1 has no response topic.
    package func replyQueue() async throws -> (replyTo: String, subscription: Subscription) {
        guard options.protocolVersion == 5 else {
            throw MsgFloError(.unsupported, "MQTT 3.1.1 (\(broker)) cannot carry a reply-to: connect with ?protocol=5")
        }
        let topic = "msgflo/reply/" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return (topic, try await subscribe(topic, prefetch: nil))
    }

    package func consume(_ queue: String, options: ConsumeOptions) async throws -> Subscription {
        if let pool = options.pool { try pooled(queue, pool) }
        return try await subscribe(queue, prefetch: options.prefetch)
    }

    /// A worker pool's topic: a plain topic (no wildcard) whose shared-subscription filter fits MQTT's limits.
    private func pooled(_ topic: String, _ pool: String) throws {
        guard !TopicFilter.hasWildcard(topic) else {
            throw MsgFloError(.invalidArgument, "MQTT worker pool '\(SafeText.escape(pool, limit: 64))': '\(SafeText.escape(topic, limit: 64))' is a wildcard filter, a pool takes one topic")
        }
        try WireName.check("$share/\(pool)/\(topic)", .mqtt, use: .filter, what: "shared subscription")
        try connection.setPool(pool, for: topic)
    }

    package func subscribeData(_ queue: String) async throws -> Subscription {
        try await subscribe(queue, prefetch: nil)
    }

    private func subscribe(_ filter: String, prefetch: Int?) async throws -> Subscription {
        // Checked here, before libmosquitto sees it: the broker drops a client that subscribes a malformed filter.
        try WireName.check(filter, .mqtt, use: .filter, what: "topic filter")
        let (stream, continuation) = DeliveryStream.makeStream()
        let connection = self.connection
        let id = try await connection.addSink(filter: filter) { id in
            continuation.onTermination = { [weak connection] _ in connection?.removeSink(id) }
            return .stream(continuation, prefetch: prefetch)
        }
        return Subscription(queue: filter, stream: stream) { [weak connection] in connection?.removeSink(id) }
    }

    package func addBinding(_ binding: Binding) async throws {
        switch binding.kind {
        // A round-robin edge routes like a pub/sub one; its workers share the target in a pool (`--pool`).
        case .pubsub, .roundRobin: break
        case .deadLetter:
            throw MsgFloError(.unsupported,
                              "MQTT has no \(binding.kind.rawValue) edges (\(binding)): only pub/sub edges work over MQTT")
        }
        try WireName.check(binding.src, .mqtt, use: .filter, what: "source of edge")
        try connection.checkOpen()
        if binding.src == binding.tgt { return }
        guard !TopicFilter.hasWildcard(binding.tgt) else {
            throw MsgFloError(.invalidArgument, "MQTT edge \(binding): the target must be a topic, not a wildcard filter")
        }
        try WireName.check(binding.tgt, .mqtt, what: "target of edge")
        if TopicFilter.matches(binding.src, binding.tgt) {
            throw MsgFloError(.invalidArgument,
                              "MQTT edge \(binding): the target matches the source, so every message would loop")
        }
        if routes.withLock({ $0[binding] != nil }) { return }
        let target = binding.tgt
        let id = try await connection.addSink(filter: binding.src) { _ in .route(target: target) }
        let duplicate = routes.withLock { r -> Bool in
            if r[binding] != nil { return true }
            r[binding] = id
            return false
        }
        if duplicate { connection.removeSink(id) }
    }

    package func removeBinding(_ binding: Binding) async throws {
        guard binding.kind != .deadLetter else {
            throw MsgFloError(.unsupported, "MQTT has no \(binding.kind.rawValue) edges (\(binding))")
        }
        try connection.checkOpen()
        if let id = routes.withLock({ $0.removeValue(forKey: binding) }) { connection.removeSink(id) }
    }

    package func queueDepth(_ queue: String) async throws -> Int? {
        try connection.checkOpen()
        return nil
    }
}

/// Where ``MQTTFlowControl`` wakes the consuming connection's loop (its eventfd, known once the connection exists).
final class WakeTarget: Sendable {
    let fd = Atomic<Int32>(-1)
    func signal() {
        let fd = self.fd.load(ordering: .acquiring)
        if fd >= 0 { IOThread.signal(fd: fd) }
    }
}
