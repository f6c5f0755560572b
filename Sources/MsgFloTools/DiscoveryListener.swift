import Foundation
import MsgFlo
import Synchronization

/// Listens on the discovery queue/topic `fbp` and remembers the latest definition announced for each role.
///
/// On AMQP the messages are consumed but never acknowledged: when the listener stops, RabbitMQ puts them back on
/// `fbp` for a coordinator, so a tool that looks at discovery takes nothing from anyone. Malformed messages are
/// skipped.
package final class DiscoveryListener: Sendable {
    private let byRole = Mutex<[String: ParticipantDefinition]>([:])

    package init() {}

    /// Listens while `body` runs: subscribes first (msgflo subscribed after what may announce itself was started,
    /// issue 94), and stops when `body` returns or throws; on AMQP the messages seen then go back to `fbp`.
    package func listening<R>(on transport: any Transport, isolation: isolated (any Actor)? = #isolation,
                              _ body: () async throws -> R) async throws -> R {
        try await transport.declareDiscoveryQueue()
        let subscription = try await transport.consume(discoveryQueue, options: ConsumeOptions(prefetch: 10_000))
        return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
            // A parse and a lock per batch: small enough for the transport's own thread. Ends with the subscription.
            group.addTask(executorPreference: transport.preferredExecutor) {
                while let batch = await subscription.nextBatch() {
                    let definitions = batch.compactMap { try? Discovery.parse($0.message) }
                    guard !definitions.isEmpty else { continue }
                    self.byRole.withLock { for d in definitions { $0[d.role] = d } }
                }
            }
            do {
                let result = try await body()
                await subscription.cancel()
                return result
            } catch {
                await subscription.cancel()
                throw error
            }
        }
    }

    package var definitions: [String: ParticipantDefinition] { byRole.withLock { $0 } }

    package func definition(role: String) -> ParticipantDefinition? { byRole.withLock { $0[role] } }

    /// Waits until every role in `roles` has announced itself, `deadline` passes, or `check` throws (a participant
    /// died, say). Returns the roles still missing.
    package func wait(for roles: Set<String>, until deadline: ContinuousClock.Instant,
                     check: () throws -> Void = {}) async throws -> Set<String> {
        while true {
            let missing = roles.subtracting(byRole.withLock { Set($0.keys) })
            if missing.isEmpty { return missing }
            try check()
            if ContinuousClock.now >= deadline { return missing }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}
