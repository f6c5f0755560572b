import Logging
import MsgFlo
import MsgFloTesting
import MsgFloTransports
import ServiceLifecycle
import Testing
import TestSupport

/// The structured life of a transport: the scoped `withConnection` / `withTransport` and `TransportService`, on
/// every transport of the conformance suite (real brokers for AMQP and MQTT).
@Suite("Transport life", .serialized)
struct TransportLifeTests {
    struct Boom: Error {}

    @Test(arguments: ConformanceTransport.allCases)
    func withConnectionClosesOnReturnThrowAndCancellation(_ kind: ConformanceTransport) async throws {
        let factory = try kind.factory()

        let returning = try factory.make()
        let seen = try await returning.withConnection { returning.state }
        #expect(seen == .connected)
        #expect(returning.state == .closed)

        let throwing = try factory.make()
        await #expect(throws: Boom.self) { try await throwing.withConnection { throw Boom() } }
        #expect(throwing.state == .closed)

        // Cancelled while the body waits: the body ends, and the close runs to its end in the cancelled task.
        let cancelled = try factory.make()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await cancelled.withConnection { try await Task.sleep(for: .seconds(3600)) } }
            try? await waitUntil(timeout: .seconds(20)) { cancelled.state == .connected }
            group.cancelAll()
        }
        #expect(cancelled.state == .closed)

        // A connect that fails closes too (the address answers nothing; a short connect timeout).
        if let unanswered = factory.unanswered {
            let failing = try unanswered(TransportTimeouts(connect: .milliseconds(300), operation: .seconds(1),
                                                           reconnectWait: .seconds(1)))
            await #expect(throws: MsgFloError.self) { try await failing.withConnection {} }
            #expect(failing.state == .closed)
        }
    }

    @Test(arguments: [TestBrokers.Kind.amqp, .mqtt])
    func withTransportMakesConnectsAndCloses(_ kind: TestBrokers.Kind) async throws {
        let url = try TestBrokers.url(kind)
        let made = try await withTransport(broker: url, logger: testLogger()) { transport in
            #expect(transport.state == .connected)
            return transport
        }
        #expect(made.state == .closed)
    }

    /// `run()` connects, and closes at graceful shutdown; a service beside it waits for `connected()`.
    @Test(arguments: [ConformanceTransport.inMemory, .amqp, .mqtt])
    func transportServiceConnectsAndClosesAtGracefulShutdown(_ kind: ConformanceTransport) async throws {
        let service = TransportService(try kind.factory().make())
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: testLogger()))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await service.connected()
            #expect(service.transport.state == .connected)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(service.transport.state == .closed)
        await #expect(throws: MsgFloError.self) { try await service.connected() }
    }
}
