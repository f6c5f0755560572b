import Foundation
import MsgFlo

/// `msgflo status`: asks a running daemon over the broker, or failing that listens on `fbp` for a while.
package enum StatusClient {
    /// Asks the daemon; nil when none answers within `timeout`.
    package static func ask(_ transport: any Transport, timeout: Duration = .seconds(3)) async throws -> NetworkStatus? {
        let reply = "msgflo.status.reply-\(UInt64.random(in: 0...UInt64.max))"
        try await transport.declareInport(reply, options: QueueOptions(persistent: false))
        let sub = try await transport.consume(reply, options: ConsumeOptions(prefetch: 1))
        try await transport.send(toInport: StatusProtocol.queue,
                                 StatusProtocol.request(reply: reply, now: Date().timeIntervalSince1970))
        let result = await withTaskGroup(of: NetworkStatus?.self) { g in
            g.addTask {
                for await d in sub {
                    d.ack()
                    if let j = d.message.json, let s = try? NetworkStatus(json: j) { return s }
                }
                return nil
            }
            g.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await g.next() ?? nil
            g.cancelAll()
            await sub.cancel()
            return first
        }
        return result
    }

    /// Builds a status from the discovery messages heard during `duration` (no daemon running). On AMQP the messages
    /// are taken unacknowledged and go back to `fbp` when the listening ends, for the next coordinator.
    package static func listen(_ transport: any Transport, for duration: Duration = .seconds(5),
                              heartbeatDefault: Double = 600) async throws -> NetworkStatus {
        try await transport.declareDiscoveryQueue()
        let sub = try await transport.consume(discoveryQueue, options: ConsumeOptions(prefetch: 10_000))
        let collected = await withTaskGroup(of: [ParticipantDefinition: Double]?.self) { g in
            g.addTask {
                var seen: [ParticipantDefinition: Double] = [:]
                for await d in sub {
                    if let def = try? Discovery.parse(d.message) {
                        // Never fresher than the announcement's own timestamp says (ghosts left in a durable queue).
                        let t = Announcements.seenAt(received: Date().timeIntervalSince1970, def)
                        seen[def] = max(seen[def] ?? t, t)
                    }
                    if Task.isCancelled { break }
                }
                return seen
            }
            g.addTask {
                try? await Task.sleep(for: duration)
                return nil
            }
            _ = await g.next()
            await sub.cancel()
            var out: [ParticipantDefinition: Double] = [:]
            for await r in g { if let r { out.merge(r) { max($0, $1) } } }
            return out
        }
        var registry = ParticipantRegistry(defaultTimeout: heartbeatDefault)
        for (def, t) in collected.sorted(by: { $0.value < $1.value }) { _ = registry.observe(def, at: t) }
        _ = registry.tick(at: Date().timeIntervalSince1970)
        var rows: [NetworkStatus.Row] = []
        for role in registry.roles.sorted() {
            let entries = registry.participants(role: role)
            var depths: [String: Int] = [:]
            if transport.capabilities.contains(.queueDepth), let d = entries.first?.definition {
                for p in d.inports { if let q = p.queue, let n = try? await transport.queueDepth(q) { depths[q] = n } }
            }
            rows.append(.init(role: role, component: entries.first?.definition.component ?? "",
                              participants: entries.map { .init(id: $0.definition.id, alive: $0.alive, lastSeen: $0.lastSeen) },
                              pendingEdges: [], queueDepths: depths, inGraph: false,
                              inports: entries.first.map { NetworkStatus.ports($0.definition.inports) } ?? [:],
                              outports: entries.first.map { NetworkStatus.ports($0.definition.outports) } ?? [:]))
        }
        return NetworkStatus(source: "fbp", rows: rows)
    }
}

/// How announcements are dated (docs/coordinator.md, "Liveness").
package enum Announcements {
    /// When an announcement counts as heard: when it arrived, unless its `timestamp` (this project's extension) says
    /// it was sent earlier (it waited in a queue). A timestamp ahead of the receiver's clock counts as the arrival:
    /// an announcement is never fresher than either.
    package static func seenAt(received: Double, _ d: ParticipantDefinition) -> Double {
        guard let sent = d.timestamp else { return received }
        return min(received, sent)
    }
}
