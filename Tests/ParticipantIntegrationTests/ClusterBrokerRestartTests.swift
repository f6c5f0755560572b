import ExampleParticipants
import Foundation
import Logging
import MsgFlo
import MsgFloParticipant
import MsgFloTransports
import Synchronization
import TestSupport
import Testing

/// Issue 15 on the three-node RabbitMQ cluster of `Scripts/brokers cluster` (started on demand; these tests kill
/// nodes, so their names say BrokerRestart and Scripts/test runs them in its serial pass).
@Suite("Cluster BrokerRestart", .serialized)
struct ClusterBrokerRestartTests {
    static let timeouts = TransportTimeouts(connect: .seconds(20), operation: .seconds(30), reconnectWait: .seconds(120))

    /// Numbers that arrived (with how many arrived in all, duplicates included: at-least-once may redeliver).
    final class Numbers: Sendable {
        let seen = Mutex<(set: Set<Int>, total: Int)>(([], 0))
        func add(_ n: Int) { seen.withLock { $0.set.insert(n); $0.total += 1 } }
        var distinct: Int { seen.withLock { $0.set.count } }
        var total: Int { seen.withLock { $0.total } }
    }

    final class Failures: Sendable {
        let list = Mutex<[String]>([])
        func add(_ s: String) { list.withLock { $0.append(s) } }
        var all: [String] { list.withLock { $0 } }
    }

    static func connected(_ url: BrokerURL, _ label: String) async throws -> any Transport {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        let t = try Transports.make(url, logger: logger, timeouts: timeouts)
        try await t.connect()
        return t
    }

    @Test
    func chainOnQuorumQueuesLosesNothingWhenItsNodeIsKilledBrokerRestart() async throws {
        let url = try await TestBrokers.clusterURL(options: "queue-type=quorum")
        // No shuffle: everyone connects to node 1, the node that dies.
        let participants = try await Self.connected(url, "test.cluster.participants")
        let client = try await Self.connected(url, "test.cluster.client")
        let a = TestBrokers.unique("zlA"), b = TestBrokers.unique("zlB"), sink = TestBrokers.unique("zl.sink")
        let pa = try await Examples.repeatParticipant.start(role: a, on: participants, options: ParticipantOptions(prefetch: 100), logger: testLogger())
        let pb = try await Examples.repeatParticipant.start(role: b, on: participants, options: ParticipantOptions(prefetch: 100), logger: testLogger())
        try await client.declareInport(sink)
        try await client.addBinding(Binding(src: "\(a).OUT", tgt: "\(b).IN"))
        try await client.addBinding(Binding(src: "\(b).OUT", tgt: sink))
        let numbers = Numbers()
        let consumer = Task {
            for await d in try await client.consume(sink, options: ConsumeOptions(prefetch: 500)) {
                if let n = d.message.text.flatMap({ Int($0) }) { numbers.add(n) }
                d.ack()
            }
        }
        let total = 20_000
        let failures = Failures()
        // Every message confirmed by the broker (publisher confirms, mandatory), 200 in flight at a time.
        let sender = Task {
            var next = 0
            while next < total {
                await withTaskGroup(of: Void.self) { group in
                    for i in next..<min(total, next + 200) {
                        group.addTask {
                            do { try await client.sendRouted(toInport: "\(a).IN", Message(text: "\(i)")) } catch {
                                failures.add("\(i): \(error)")
                            }
                        }
                    }
                }
                next += 200
            }
        }
        try await eventually("5,000 through the chain before the kill", timeout: .seconds(120)) { numbers.distinct >= 5_000 }
        try await TestBrokers.script(["cluster", "kill", "1"])
        let killedAt = ContinuousClock.now
        let before = numbers.distinct
        try await eventually("data flowing again after the kill", timeout: .seconds(60)) { numbers.distinct > before + 100 }
        let recovery = ContinuousClock.now - killedAt
        await sender.value
        try await eventually("all \(total) through the chain (have \(numbers.distinct))", timeout: .seconds(180)) {
            numbers.distinct >= total
        }
        #expect(failures.all.isEmpty, "sends failed: \(failures.all.prefix(3))")
        #expect(numbers.distinct == total)
        #expect(participants.state == .connected)
        print("cluster chain: \(total) confirmed, \(numbers.distinct) distinct received (\(numbers.total - numbers.distinct) redelivered), data flowing \(recovery) after kill -9 of node 1")
        consumer.cancel()
        await pa.stop()
        await pb.stop()
        await participants.close()
        await client.close()
        try await TestBrokers.script(["cluster", "revive", "1"])
    }
}
