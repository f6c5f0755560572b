import Logging
import MsgFlo
import ServiceLifecycle

/// Runs participants on one transport as a swift-service-lifecycle `Service`: connects, starts each one, and on
/// graceful shutdown (SIGTERM/SIGINT in a `ServiceGroup`) stops taking messages, lets the handlers in hand finish
/// and settle, then closes the transport. `run()` throws when the transport closes underneath (gave up
/// reconnecting).
///
/// ```swift
/// let service = ParticipantService(transport: transport, participants: [(uppercase, "up"), (repeat, "rep")])
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

    public init(transport: any Transport, entries: [Entry], logger: Logger = Logger(label: "msgflo.participant"),
                onReady: (@Sendable ([RunningParticipant]) -> Void)? = nil) {
        self.transport = transport
        self.entries = entries
        self.logger = logger
        self.onReady = onReady
    }

    public init(transport: any Transport, participants: [(Participant, String)],
                options: ParticipantOptions = ParticipantOptions(),
                logger: Logger = Logger(label: "msgflo.participant"),
                onReady: (@Sendable ([RunningParticipant]) -> Void)? = nil) {
        self.init(transport: transport, entries: participants.map { Entry($0.0, role: $0.1, options: options) },
                  logger: logger, onReady: onReady)
    }

    private enum Event: Sendable { case shutdown, closed }

    public func run() async throws {
        if transport.state == .idle { try await transport.connect() }
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

        let (events, continuation) = AsyncStream<Event>.makeStream()
        let updates = transport.stateUpdates()
        let watcher = Task {
            for await s in updates where s == .closed {
                continuation.yield(.closed)
                return
            }
        }
        let event = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await events.first { _ in true }
            } onCancel: {
                continuation.yield(.shutdown)
            }
        } onGracefulShutdown: {
            continuation.yield(.shutdown)
        }
        watcher.cancel()
        continuation.finish()

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
