import Logging
import MsgFlo
import MsgFloAMQP
import MsgFloMQTT
import ServiceLifecycle

/// The one place that turns a broker URL into a transport. Programs call it once, at their edge; the layers above
/// (SDK, coordinator, tools) only ever see `any Transport`.
public enum Transports {
    /// A transport for `amqp://`, `amqps://`, `mqtt://` or `mqtts://`. Not yet connected: call `connect()`.
    /// Throws a one-line ``MsgFloError`` for options the transport cannot use.
    /// - Parameter maxOutstanding: AMQP: the most messages unconfirmed or queued before `send` waits for room (nil:
    ///   the transport's default). MQTT ignores it.
    public static func make(_ url: BrokerURL, logger: Logger, timeouts: TransportTimeouts = TransportTimeouts(),
                            maxOutstanding: Int? = nil) throws -> any Transport {
        if url.scheme.isAMQP {
            if let maxOutstanding {
                return try AMQPTransport(url: url, timeouts: timeouts, maxOutstanding: maxOutstanding, logger: logger)
            }
            return try AMQPTransport(url: url, timeouts: timeouts, logger: logger)
        } else {
            return try MQTTTransport(broker: url, timeouts: timeouts, logger: logger)
        }
    }

    /// Resolves the broker as every msgflo program does (argument, `MSGFLO_BROKER`, `CLOUDAMQP_URL`,
    /// `amqp://localhost`) and makes its transport.
    public static func make(argument: String?, environment: [String: String], logger: Logger,
                            timeouts: TransportTimeouts = TransportTimeouts()) throws -> any Transport {
        try make(BrokerURL.resolve(argument, environment: environment), logger: logger, timeouts: timeouts)
    }
}

/// Makes the transport for `broker`, connects it, runs `body` with it, and closes it whatever happens (return, throw,
/// cancellation): the scoped form of a connection's life (``Transport/withConnection(isolation:_:)``).
///
/// ```swift
/// try await withTransport(broker: url, logger: logger) { transport in
///     try await transport.send(toInport: "repeat.IN", Message(text: "hello"))
/// }
/// ```
public func withTransport<R>(broker: BrokerURL, logger: Logger, timeouts: TransportTimeouts = TransportTimeouts(),
                             isolation: isolated (any Actor)? = #isolation,
                             _ body: (any Transport) async throws -> R) async throws -> R {
    let transport = try Transports.make(broker, logger: logger, timeouts: timeouts)
    return try await transport.withConnection { try await body(transport) }
}

/// A transport as a swift-service-lifecycle `Service`, for daemons: `run()` connects, then waits for graceful
/// shutdown (or cancellation), then closes. A connection that closes underneath (the transport gave up) ends `run()`
/// with `.connectionLost`; a failed connect throws its error. Services that use the transport wait for
/// ``connected()``.
///
/// ```swift
/// let connection = TransportService(try Transports.make(url, logger: logger))
/// try await ServiceGroup(services: [connection, myService], gracefulShutdownSignals: [.sigterm],
///                        logger: logger).run()
/// ```
public struct TransportService: Service {
    public let transport: any Transport

    public init(_ transport: any Transport) { self.transport = transport }

    public func run() async throws {
        let transport = self.transport
        try await transport.withConnection {
            let updates = transport.stateUpdates()
            // Ends at graceful shutdown, at cancellation (both leave the state stream: cancelling it ends the
            // loop), or when the transport closes by itself.
            let closedUnderneath = await cancelWhenGracefulShutdown {
                for await state in updates where state == .closed { return true }
                return false
            }
            if closedUnderneath {
                throw MsgFloError(.connectionLost, "connection to \(transport.broker) closed")
            }
        }
    }

    /// Returns once the transport is connected; throws `.closed` when it closed first, `.cancelled` when the
    /// calling task is cancelled.
    public func connected() async throws {
        for await state in transport.stateUpdates() {
            if state == .connected { return }
            if state == .closed { break }
        }
        if Task.isCancelled { throw MsgFloError(.cancelled, "waiting for \(transport.broker) to connect was cancelled") }
        throw MsgFloError(.closed, "transport to \(transport.broker) closed before it connected")
    }
}
