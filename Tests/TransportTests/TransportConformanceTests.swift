import Logging
import MsgFlo
import MsgFloAMQP
import MsgFloMQTT
import MsgFloTesting
import Testing
import TestSupport

/// The transports the conformance suite runs on: the in-memory one the unit tests above trust, RabbitMQ, and
/// Mosquitto as msgflo uses it (3.1.1, QoS 0), with QoS 1 (flow control: prefetch) and with protocol 5 (properties).
enum ConformanceTransport: String, CaseIterable, Sendable, CustomStringConvertible {
    case inMemory = "in-memory", amqp, mqtt, mqttQoS1 = "mqtt qos=1", mqtt5 = "mqtt protocol=5", mqtt5QoS1 = "mqtt protocol=5 qos=1"

    var description: String { rawValue }

    /// A port that takes connections and never answers, for the cases about calls that wait.
    static let silent = Result { try UnansweringServer() }

    /// `away`: take the broker away for the cases that need it (BrokerRestart tests only).
    func factory(away: Bool = false) throws -> TransportFactory {
        let timeouts = TransportTimeouts(connect: .seconds(5), operation: .seconds(5), reconnectWait: .seconds(30))
        let port = try Self.silent.get().port
        switch self {
        case .inMemory:
            return .inMemory()
        case .amqp:
            let url = try TestBrokers.url(.amqp)
            let silent = try BrokerURL(parsing: "amqp://guest:guest@127.0.0.1:\(port)/")
            return TransportFactory(rawValue, make: { try AMQPTransport(url: url, timeouts: timeouts, logger: testLogger()) },
                                    loseConnection: { ($0 as? AMQPTransport)?.dropConnection() },
                                    unanswered: { try AMQPTransport(url: silent, timeouts: $0, logger: testLogger()) },
                                    whileBrokerAway: away ? awayHook(.amqp) : nil)
        case .mqtt, .mqttQoS1, .mqtt5, .mqtt5QoS1:
            let options = [.mqttQoS1: "qos=1", .mqtt5: "protocol=5", .mqtt5QoS1: "protocol=5&qos=1"][self] ?? ""
            let unanswered: @Sendable (TransportTimeouts) throws -> any Transport = {
                try MQTTTransport(broker: BrokerURL(parsing: "mqtt://127.0.0.1:\(port)?" + options
                                                    + "&clientId=" + TestBrokers.unique("conformance")),
                                  timeouts: $0, logger: testLogger())
            }
            let whileAway = away ? awayHook(.mqtt) : nil
            guard options.contains("qos=1") else {
                let url = try mqttURL(options)
                return TransportFactory(rawValue, make: { try MQTTTransport(broker: url, timeouts: timeouts, logger: testLogger()) },
                                        unanswered: unanswered, whileBrokerAway: whileAway)
            }
            // A persistent session (QoS 1's default) per connection: each needs a client id of its own.
            return TransportFactory(rawValue, make: {
                try MQTTTransport(broker: try mqttURL(options + "&clientId=" + TestBrokers.unique("conformance")),
                                  timeouts: timeouts, logger: testLogger())
            }, unanswered: unanswered, whileBrokerAway: whileAway)
        }
    }
}

func awayHook(_ kind: TestBrokers.Kind) -> TransportFactory.BrokerAway {
    { @Sendable body in try await brokerAway(kind, body) }
}

/// `Scripts/brokers down KIND`, `body`, then `up KIND` (on failure too).
func brokerAway(_ kind: TestBrokers.Kind, _ body: @Sendable () async throws -> Void) async throws {
    try await TestBrokers.script(["down", kind.rawValue])
    do {
        try await body()
    } catch {
        try await TestBrokers.script(["up", kind.rawValue])
        throw error
    }
    try await TestBrokers.script(["up", kind.rawValue])
}

extension ConformanceTransport {
}

/// One suite for every transport (MsgFloTesting's TransportConformance): what the per-broker transport tests used
/// to check each for itself. Broker-specific behaviour (TLS, bad URLs and credentials, broker restarts, MQTT
/// wildcards and persistent sessions, AMQP's redeclare with other flags) stays in the per-broker suites.
@Suite("Transport conformance", .serialized)
struct TransportConformanceTests {
    @Test(arguments: ConformanceTransport.allCases, TransportConformance.cases)
    func conforms(_ transport: ConformanceTransport, _ c: TransportConformance.Case) async throws {
        try await c.run(try transport.factory())
    }

    /// The cases that take the broker away (BrokerRestart: Scripts/test runs them in its serial pass), on the
    /// transports that have one.
    @Test(arguments: [ConformanceTransport.amqp, .mqtt, .mqttQoS1], TransportConformance.brokerAwayCases)
    func conformsBrokerRestart(_ transport: ConformanceTransport, _ c: TransportConformance.Case) async throws {
        try await c.run(try transport.factory(away: true), timeout: .seconds(60))
    }

    /// Each transport states what it can do; the suite's cases check it does. These are the claims.
    @Test func capabilitiesAreWhatTheDocsSay() async throws {
        let amqp: TransportCapabilities = [.brokerBindings, .sharedQueues, .queuesHoldMessages, .queueDepth,
                                           .deadLetters, .prefetch, .redeliversUnsettled, .messageProperties,
                                           .messageExpiry, .exclusiveLock]
        let real = [try AMQPTransport(url: TestBrokers.url(.amqp), logger: testLogger()).capabilities,
                    try MQTTTransport(broker: mqttURL(), logger: testLogger()).capabilities,
                    try MQTTTransport(broker: mqttURL("qos=1"), logger: testLogger()).capabilities,
                    try MQTTTransport(broker: mqttURL("protocol=5"), logger: testLogger()).capabilities]
        #expect(real == [amqp, [.exclusiveLock], [.exclusiveLock, .prefetch], [.exclusiveLock, .messageProperties]])
        #expect(InMemoryTransport().capabilities == amqp.subtracting([.messageExpiry, .exclusiveLock]))
        #expect(InMemoryTransport(url: BrokerURL(scheme: .mqtt, host: "in-memory")).capabilities
                == InMemoryTransport.mqttCapabilities)
        #expect(!InMemoryTransport.mqttCapabilities.contains(.brokerBindings))
        let mqtt = try MQTTTransport(broker: mqttURL(), logger: testLogger())
        #expect(InMemoryTransport().redeliversUnsettled && !mqtt.redeliversUnsettled)
        #expect("\(TransportCapabilities([.prefetch, .brokerBindings]))" == "[brokerBindings, prefetch]")
    }
}
