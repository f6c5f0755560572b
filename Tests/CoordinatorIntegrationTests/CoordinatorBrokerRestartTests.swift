import Foundation
import MsgFlo
import MsgFloCoordinator
import TestSupport
import Testing

extension CoordinatorIntegration.CoordinatorBrokerTests {
    /// The broker goes away and comes back under a running coordinator and a wired network: everyone reconnects by
    /// themselves and data flows end to end again (AMQP: the broker kept the durable bindings; MQTT: the
    /// coordinator's router subscribes again).
    @Test(arguments: TestBrokers.Kind.allCases)
    func wiredNetworkCarriesOnAfterABrokerRestart(_ kind: TestBrokers.Kind) async throws {
        let a = TestBrokers.unique("a"), b = TestBrokers.unique("b")
        let (c, task) = try await start(kind, graph(a, b, iip: "before"))
        let pb = try await TestRepeater(kind, id: b + "-1", role: b)
        let pa = try await TestRepeater(kind, id: a + "-1", role: a)
        let tap = try await Tap(pb.transport, "\(b).OUT")
        #expect(await c.wait { $0.plan.pendingRoles.isEmpty && $0.idle })
        #expect(await tap.wait(count: 1))

        // The coordinator's connection reports that it went away (so the restart really cut it).
        let states = Task { () -> Bool in
            for await s in await c.transport.stateUpdates() { if case .reconnecting = s { return true } }
            return false
        }
        try await TestBrokers.restart(kind)

        let everyone = [await c.transport, pa.transport, pb.transport]
        try await eventually("all transports connected again", timeout: .seconds(60)) {
            everyone.allSatisfy { $0.state == .connected }
        }
        #expect(await states.value)
        // The coordinator is still running, and still sees both participants.
        #expect(await c.wait(timeout: .seconds(20)) { $0.plan.pendingRoles.isEmpty && $0.idle })
        try await pa.transport.send(toInport: "\(a).IN", Message(json: "after"))
        #expect(await tap.wait(count: 2, timeout: .seconds(20)))
        #expect(tap.values.last == "after")
        await pa.stop(); await pb.stop()
        await stop(c, task)
    }
}
