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

    func factory() throws -> TransportFactory {
        let timeouts = TransportTimeouts(connect: .seconds(5), operation: .seconds(5), reconnectWait: .seconds(30))
        switch self {
        case .inMemory:
            return .inMemory()
        case .amqp:
            let url = try TestBrokers.url(.amqp)
            return TransportFactory(rawValue) { try AMQPTransport(url: url, timeouts: timeouts, logger: testLogger()) }
        case .mqtt, .mqttQoS1, .mqtt5, .mqtt5QoS1:
            let options = [.mqttQoS1: "qos=1", .mqtt5: "protocol=5", .mqtt5QoS1: "protocol=5&qos=1"][self] ?? ""
            guard options.contains("qos=1") else {
                let url = try mqttURL(options)
                return TransportFactory(rawValue) { try MQTTTransport(broker: url, timeouts: timeouts, logger: testLogger()) }
            }
            // A persistent session (QoS 1's default) per connection: each needs a client id of its own.
            return TransportFactory(rawValue) {
                try MQTTTransport(broker: try mqttURL(options + "&clientId=" + TestBrokers.unique("conformance")),
                                  timeouts: timeouts, logger: testLogger())
            }
        }
    }
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
