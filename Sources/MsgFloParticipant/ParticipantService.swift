import Logging
import MsgFlo
import MsgFloObserve
import ServiceLifecycle

/// Runs participants on one transport as a swift-service-lifecycle `Service`: connects, starts each one, and on
/// graceful shutdown (SIGTERM/SIGINT in a `ServiceGroup`) stops taking messages, lets the handlers in hand finish
/// and settle, then closes the transport. `run()` throws when the transport closes underneath (gave up
/// reconnecting).
///
/// ```swift
/// let service = ParticipantService(transport: transport, participants: [(uppercase, "up"), (repeat, "rep")],
///                                  logger: logger)
/// try await ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
/// ```
public struct ParticipantService: Service {
    public struct Entry: Sendable {
        public var participant: Participant
        public var role: String
        public var options: ParticipantOptions
        public init(_ participant: Participant, role: String, options: ParticipantOptions = ParticipantOptions()) {
            self.participant = participant
            self.role = role
            self.options = options
        }
    }

    public let transport: any Transport
    public let entries: [Entry]
    public let logger: Logger
    /// Called once every participant is announced (the command-line face prints its ready line here).
    public let onReady: (@Sendable ([RunningParticipant]) -> Void)?
    /// Called with the port once the metrics server listens (an entry's ``ParticipantOptions/metricsPort``).
    public var onMetricsListening: (@Sendable (Int) async -> Void)?

    public init(transport: any Transport, entries: [Entry], logger: Logger,
                onReady: (@Sendable ([RunningParticipant]) -> Void)? = nil) {
        self.transport = transport
        self.entries = entries
        self.logger = logger
        self.onReady = onReady
    }

    public init(transport: any Transport, participants: [(Participant, String)],
                options: ParticipantOptions = ParticipantOptions(),
                logger: Logger,
                onReady: (@Sendable ([RunningParticipant]) -> Void)? = nil) {
        self.init(transport: transport, entries: participants.map { Entry($0.0, role: $0.1, options: options) },
                  logger: logger, onReady: onReady)
    }

    private enum Event: Sendable { case shutdown, closed }

    /// Runs the participants, and, when an entry has a ``ParticipantOptions/metricsPort``, the metrics server beside
    /// them (one for the process: every entry without a factory of its own records into it). The server failing
    /// (its port taken) stops the participants with its error; the participants ending stops the server.
    public func run() async throws {
        guard let port = entries.lazy.compactMap(\.options.metricsPort).first else {
            try await runParticipants(entries)
            return
        }
        let observability = Observability()
        let entries = self.entries.map { e in
            var e = e
            if e.options.metrics == nil { e.options.metrics = observability.factory }
            return e
        }
        let transport = self.transport
        let server = MetricsServer(observability: observability, port: port, logger: logger, readiness: {
            let state = transport.state
            return Readiness(ready: state == .connected, detail: "broker \(transport.broker) \(state)")
        }, onListening: onMetricsListening ?? { _ in })
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await server.run(); return false }
            group.addTask { try await self.runParticipants(entries); return true }
            while let participantsEnded = try await group.next() {
                if participantsEnded { group.cancelAll(); return }
            }
        }
    }

    private func runParticipants(_ entries: [Entry]) async throws {
        if transport.state == .idle {
            do { try await transport.connect() } catch {
                await transport.close()
                throw error
            }
        }
        var running: [RunningParticipant] = []
        do {
            for e in entries {
                running.append(try await e.participant.start(role: e.role, on: transport, options: e.options, logger: logger))
            }
        } catch {
            for r in running { await r.stop(cancelSubscriptions: false) }
            await transport.close()
            throw error
        }
        onReady?(running)

        // Until graceful shutdown or cancellation (either ends the watch of the state stream), or until the
        // transport closes underneath.
        let updates = transport.stateUpdates()
        let closedUnderneath = await cancelWhenGracefulShutdown {
            for await s in updates where s == .closed { return true }
            return false
        }
        let event: Event = closedUnderneath ? .closed : .shutdown

        await withTaskGroup(of: Void.self) { group in
            for r in running { group.addTask { await r.stop(cancelSubscriptions: false) } }
        }
        await transport.close()
        for r in running { await r.waitForLoops() }
        if event == .closed {
            throw MsgFloError(.connectionLost, "connection to \(transport.broker) closed")
        }
    }
}
