import Foundation
import MsgFlo
import MsgFloAMQP
import MsgFloMQTT
import Testing
import TestSupport

/// Message properties (issue 14) through the real brokers: every field survives AMQP and MQTT 5, payload bytes
/// do not change, MQTT 3.1.1 refuses what it cannot carry, and the reply queues answer the right caller.
@Suite("Message properties")
struct MessagePropertiesTests {
    static let full = MessageProperties(
        correlationID: "c-42", replyTo: "somewhere", messageID: "m-7", timestamp: 1_700_000_000,
        contentType: "application/json",
        headers: ["traceparent": .string("00-abc-def-01"), "x-n": .int(-12), "x-ok": .bool(true),
                  "x-f": .double(2.5), "x-utf": .string("grüße ✓")],
        priority: 5, expirationMilliseconds: 60_000, persistent: true)

    static let body: [UInt8] = Array("{\"a\":1}".utf8) + [0, 255, 10]

    static func next(_ sub: Subscription, timeout: Duration = .seconds(10)) async throws -> Delivery {
        try await withThrowingTaskGroup(of: Delivery?.self) { group in
            group.addTask {
                for await d in sub { return d }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let d = try await group.next() ?? nil else { throw TimedOut() }
            return d
        }
    }

    static func amqp() async throws -> AMQPTransport {
        let t = try AMQPTransport(url: try TestBrokers.url(.amqp), logger: testLogger())
        try await t.connect()
        return t
    }

    @Test func badPropertiesFailTheSendAlone() async throws {
        let t = try await Self.amqp()
        let q = TestBrokers.unique("props.bad.IN")
        try await t.declareInport(q, options: QueueOptions(persistent: false))
        let long = String(repeating: "x", count: 256)
        for bad in [MessageProperties(correlationID: long), MessageProperties(replyTo: "a\u{0}b"),
                    MessageProperties(headers: [long: .bool(true)]), MessageProperties(priority: 10)] {
            await #expect(throws: MsgFloError.self) { try await t.send(toInport: q, Message(bytes: [1], properties: bad)) }
        }
        // The connection is fine.
        let sub = try await t.consume(q)
        try await t.send(toInport: q, Message(bytes: [2], properties: MessageProperties(correlationID: "ok")))
        let d = try await Self.next(sub)
        #expect(d.message.properties.correlationID == "ok")
        d.ack()
        await sub.cancel()
        await t.close()
    }

    /// RabbitMQ's direct reply-to: the caller needs no queue; the server answers to the reply-to it got.
    @Test func directReplyToAnswersTheCaller() async throws {
        let server = try await Self.amqp()
        let caller = try await Self.amqp()
        let q = TestBrokers.unique("props.rpc.IN")
        try await server.declareInport(q, options: QueueOptions(persistent: false))
        let requests = try await server.consume(q)
        let (replyTo, replies) = try await caller.replyQueue()
        #expect(replyTo == "amq.rabbitmq.reply-to")
        try await caller.send(toInport: q, Message(bytes: Array("ping".utf8),
                                                   properties: MessageProperties(correlationID: "r1", replyTo: replyTo)))
        let request = try await Self.next(requests)
        request.ack()
        let to = try #require(request.message.properties.replyTo)
        #expect(to.hasPrefix("amq.rabbitmq.reply-to."))
        try await server.send(toInport: to, Message(bytes: Array("pong".utf8),
                                                    properties: MessageProperties(correlationID: "r1")))
        let reply = try await Self.next(replies)
        #expect(reply.message.bytes == Array("pong".utf8))
        #expect(reply.message.properties.correlationID == "r1")
        await replies.cancel()
        await requests.cancel()
        await caller.close()
        await server.close()
    }

    /// A request with reply-to amq.rabbitmq.reply-to from a connection whose reply subscription is gone: RabbitMQ
    /// closes the publishing channel ("fast reply consumer does not exist"). That send fails at once; it is not
    /// published again (which closed the channel once a turn, for ever, and the send timed out after 40 s), and
    /// the connection's other sends go on.
    @Test func aRequestWithoutItsReplySubscriptionFailsAloneAtOnce() async throws {
        let t = try await Self.amqp()
        let q = TestBrokers.unique("props.noreply.IN")
        try await t.declareInport(q, options: QueueOptions(persistent: false))
        let (replyTo, replies) = try await t.replyQueue()
        await replies.cancel()
        do {
            try await t.sendRouted(toInport: q, Message(bytes: Array("orphan".utf8),
                                                       properties: MessageProperties(correlationID: "x", replyTo: replyTo)))
            Issue.record("a request without a reply subscription was sent")
        } catch let error as MsgFloError {
            // Refused, not timed out (the confirm timeout is what the endless republishing ended in).
            #expect(error.code == .preconditionFailed, "\(error)")
            #expect(error.message.contains("no reply subscription"), "\(error)")
        }
        // The connection still sends; and a new reply subscription makes requests work again.
        try await t.sendRouted(toInport: q, Message(bytes: Array("plain".utf8)))
        let (again, replies2) = try await t.replyQueue()
        try await t.sendRouted(toInport: q, Message(bytes: Array("asking".utf8),
                                                   properties: MessageProperties(correlationID: "y", replyTo: again)))
        #expect(try await t.queueDepth(q) == 2)
        await replies2.cancel()
        await t.close()
    }

    @Test func mqtt5ResponseTopicAnswersTheCaller() async throws {
        let server = try await connectedMQTT("protocol=5")
        let caller = try await connectedMQTT("protocol=5")
        let q = TestBrokers.unique("props/rpc/IN")
        let requests = try await server.consume(q)
        let (replyTo, replies) = try await caller.replyQueue()
        try await caller.send(toInport: q, Message(bytes: [7], properties: MessageProperties(correlationID: "k", replyTo: replyTo)))
        let request = try await Self.next(requests)
        #expect(request.message.properties.replyTo == replyTo)
        try await server.send(toInport: replyTo, Message(bytes: [8], properties: MessageProperties(correlationID: "k")))
        let reply = try await Self.next(replies)
        #expect(reply.message.bytes == [8])
        #expect(reply.message.properties.correlationID == "k")
        await caller.close()
        await server.close()
    }
}
