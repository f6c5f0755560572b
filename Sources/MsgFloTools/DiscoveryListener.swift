import Foundation
import MsgFlo
import Synchronization

/// Listens on the discovery queue/topic `fbp` and remembers the latest definition announced for each role.
///
/// On AMQP the messages are consumed but never acknowledged: when the listener stops, RabbitMQ puts them back on
/// `fbp` for a coordinator, so a tool that looks at discovery takes nothing from anyone. Malformed messages are
/// skipped.
package final class DiscoveryListener: Sendable {
    private struct State {
        var byRole: [String: ParticipantDefinition] = [:]
        var subscription: Subscription?
    }
    private let state = Mutex(State())

    package init() {}

    /// Subscribes. Call before anything that may announce itself is started (msgflo subscribed after, issue 94).
    package func start(on transport: any Transport) async throws {
        try await transport.declareDiscoveryQueue()
        // A parse and a lock per announcement: small enough for the transport's own thread (no task of ours).
        let subscription = try await transport.consume(discoveryQueue, options: ConsumeOptions(prefetch: 10_000)) {
            [weak self] delivery in
            guard let definition = try? Discovery.parse(delivery.message) else { return }
            self?.state.withLock { $0.byRole[definition.role] = definition }
        }
        state.withLock { $0.subscription = subscription }
    }

    /// Stops listening; on AMQP the messages seen go back to `fbp`.
    package func stop() async {
        let subscription = state.withLock { s in
            defer { s.subscription = nil }
            return s.subscription
        }
        await subscription?.cancel()
    }

    package var definitions: [String: ParticipantDefinition] { state.withLock { $0.byRole } }

    package func definition(role: String) -> ParticipantDefinition? { state.withLock { $0.byRole[role] } }

    /// Waits until every role in `roles` has announced itself, `deadline` passes, or `check` throws (a participant
    /// died, say). Returns the roles still missing.
    package func wait(for roles: Set<String>, until deadline: ContinuousClock.Instant,
                     check: () throws -> Void = {}) async throws -> Set<String> {
        while true {
            let missing = roles.subtracting(state.withLock { Set($0.byRole.keys) })
            if missing.isEmpty { return missing }
            try check()
            if ContinuousClock.now >= deadline { return missing }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}
