import Logging
import MsgFlo
import MsgFloAMQP
import MsgFloMQTT

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
