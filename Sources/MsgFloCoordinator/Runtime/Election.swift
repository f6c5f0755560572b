import Foundation
import Logging
import MsgFlo

/// Standby coordinators (issue 15): several `msgflo --standby` daemons of one network elect one active instance
/// through the broker; the others wait and take over when it dies.
///
/// The vote is a lock the broker keeps (``Transport/holdLock(_:)``: on AMQP the exclusive queue `msgflo.leader`,
/// held by the active instance's connection; on MQTT retained claims on `msgflo.leader/<instance>` with a last will
/// that clears them, the first started live claim holding). The broker frees it the moment that connection ends: at once when the
/// process dies on this machine or the broker's, after the heartbeat timeout (`?heartbeat=`) when a machine
/// vanishes. A standby tries every `poll`; the active instance takes it again after a reconnect and steps down (the
/// daemon ends, its children with it) when another instance has it by then.
package enum CoordinatorElection {
    package static let lock = "msgflo.leader"
    package static let poll: Duration = .milliseconds(500)

    /// This process's name in the election and in `msgflo status`: `host:pid`.
    package static var instanceName: String {
        "\(ProcessInfo.processInfo.hostName.prefix(64)):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Returns once this instance holds the lock. Transient broker errors are retried; cancellation ends the wait.
    package static func waitUntilActive(_ transport: any Transport, instance: String, logger: Logger,
                                       poll: Duration = poll) async throws {
        var said = false
        while true {
            try Task.checkCancellation()
            do {
                if try await transport.holdLock(lock) { return }
                if !said {
                    logger.info("standby: another coordinator is active on \(transport.broker); \(instance) waits to take over")
                    said = true
                }
            } catch let error as MsgFloError where error.code == .unsupported {
                throw error
            } catch {
                logger.debug("election: \(error)")
            }
            try await Task.sleep(for: poll)
        }
    }

    /// Keeps the lock while active; throws when another instance holds it (this one must step down).
    package static func keepActive(_ transport: any Transport, instance: String, logger: Logger,
                                  poll: Duration = poll) async throws {
        while true {
            try await Task.sleep(for: poll)
            let held: Bool
            do { held = try await transport.holdLock(lock) } catch is CancellationError { throw CancellationError() } catch {
                continue  // the connection is away: the transport reconnects, and the next round tells
            }
            if !held {
                throw MsgFloError(.preconditionFailed,
                                  "another coordinator became active while \(instance)'s connection was away: stepping down")
            }
        }
    }
}
