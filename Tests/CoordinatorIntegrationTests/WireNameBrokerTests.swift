import Foundation
import MsgFlo
import MsgFloCoordinator
import Synchronization
import TestSupport
import Testing


extension CoordinatorIntegration {
/// Issue 10, item 1: one message with a name the broker cannot take stalled the daemon (the transport took
/// librabbitmq's "invalid AMQP data" for a lost connection, reconnected and tried again, 252-506 times a minute).
@Suite(.serialized) struct WireNameBrokerTests {
    typealias E = DesiredGraph.Endpoint

    /// A reply name the broker refuses: "é" × 200 is 200 characters but 400 bytes, over AMQP's 255; on MQTT, where
    /// it is a fine topic, a control character (the broker drops a client that publishes it).
    static func badReply(_ kind: TestBrokers.Kind) -> String {
        kind == .amqp ? String(repeating: "é", count: 200) : "reply\u{1B}[31m"
    }

    func start(_ kind: TestBrokers.Kind, _ g: DesiredGraph, status: Bool) async throws -> (Coordinator, Task<Void, any Error>) {
        try await CoordinatorBrokerTests().start(kind, g) { o in
            o.answerStatus = status
            o.retry = .seconds(1)
        }
    }

    func stop(_ c: Coordinator, _ task: Task<Void, any Error>) async { await CoordinatorBrokerTests().stop(c, task) }

    @Test(arguments: TestBrokers.Kind.allCases)
    func statusRequestWithOversizedReplyCostsNoReconnect(_ kind: TestBrokers.Kind) async throws {
        let (c, task) = try await start(kind, DesiredGraph(), status: true)
        let transport = await c.transport
        let reconnects = ReconnectCounter(transport)
        let client = try await connect(kind)
        // The daemon answers once it consumes msgflo.status.
        var answered: NetworkStatus? = nil
        for _ in 0..<20 where answered == nil { answered = try await StatusClient.ask(client, timeout: .milliseconds(500)) }
        try #require(answered != nil, "the daemon never answered a good status request")
        for _ in 0..<5 {
            try await client.send(toInport: StatusProtocol.queue,
                                  StatusProtocol.request(reply: Self.badReply(kind), now: Date().timeIntervalSince1970))
        }
        try await Task.sleep(for: .seconds(2))
        #expect(reconnects.value == 0, "the daemon's connection was torn down by a bad reply name")
        #expect(transport.state == .connected)
        // Still answering, and still registering participants.
        #expect(try await StatusClient.ask(client, timeout: .seconds(3)) != nil)
        let r = TestBrokers.unique("w")
        let p = try await TestRepeater(kind, id: r + "-1", role: r)
        #expect(await c.wait { $0.registry[r + "-1"]?.alive == true })
        #expect(reconnects.value == 0)
        await p.stop()
        await client.close()
        await stop(c, task)
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func announcementWithOversizedQueueForAGraphRoleIsRefused(_ kind: TestBrokers.Kind) async throws {
        let a = TestBrokers.unique("a"), b = TestBrokers.unique("b")
        let g = DesiredGraph(nodes: [(a, .init(component: "test/Repeat")), (b, .init(component: "test/Repeat"))],
                             edges: [.init(E(a, "out"), E(b, "in"))])
        let (c, task) = try await start(kind, g, status: false)
        let transport = await c.transport
        let reconnects = ReconnectCounter(transport)
        #expect(await c.wait { $0.plan.pendingRoles == [a, b] })
        // a announces an outport queue the broker cannot take (400 bytes on AMQP; over 65,535 bytes on MQTT).
        let huge = String(repeating: "q", count: kind == .amqp ? 400 : 70_000)
        let bad = ParticipantDefinition(id: a + "-bad", role: a, component: "test/Repeat",
                                        inports: [PortDefinition(id: "in", queue: "\(a).IN")],
                                        outports: [PortDefinition(id: "out", queue: huge)])
        let sender = try await connect(kind)
        try await sender.declareDiscoveryQueue()
        let pb = try await TestRepeater(kind, id: b + "-1", role: b)
        for _ in 0..<5 { try await sender.announce(bad) }
        #expect(await c.wait { $0.rejected >= 1 })
        try await Task.sleep(for: .seconds(2))
        #expect(reconnects.value == 0, "the daemon's connection was torn down by a bad queue name")
        #expect(await c.observation.registry[a + "-bad"] == nil)
        // The good participant for the role is wired and data flows.
        let tap = try await Tap(pb.transport, "\(b).OUT")
        let pa = try await TestRepeater(kind, id: a + "-1", role: a)
        #expect(await c.wait { $0.plan.pendingRoles.isEmpty && $0.idle })
        try await Task.sleep(for: .milliseconds(300))
        try await pa.transport.send(toInport: "\(a).IN", Message(json: "through"))
        #expect(await tap.wait(count: 1))
        #expect(reconnects.value == 0)
        await pa.stop(); await pb.stop()
        await sender.close()
        await stop(c, task)
    }
}
}
