import MetricsTestKit
import MsgFlo
import MsgFloObserve
import MsgFloParticipant
import Prometheus
import Synchronization
import TestSupport
import Testing

/// The participant's per-message metrics kept in atomics (``NanosecondHistogram``, ``AtomicCounter``) and written at
/// scrape time: the same samples swift-prometheus wrote for the same observations, every family once, and the
/// counts right on both consuming paths; with any other swift-metrics factory, the same metrics go there.
@Suite struct MessagePathMetricsTests {
    /// Bounds, values on and next to them, 0 and past the last bound: the atomic histogram's exposition is, sample for
    /// sample, swift-prometheus' for the same durations.
    @Test func histogramWritesWhatSwiftPrometheusWrote() throws {
        let bounds = Observability.durationBucketNanoseconds
        #expect(bounds.count == Observability.durationBuckets.count && bounds.first == 50_000 && bounds.last == 10_000_000_000)
        var values = [0, 1, 7_654_321, 20_000_000_000]
        for b in bounds { values += [b - 1, b, b + 1] }
        let ours = NanosecondHistogram(bounds: bounds)
        let registry = PrometheusCollectorRegistry()
        let theirs = registry.makeDurationHistogram(name: "h_seconds", labels: [("role", "r"), ("port", #"a"b\c"#)],
                                                    buckets: Observability.durationBuckets)
        for v in values {
            ours.record(nanoseconds: v)
            theirs.record(.nanoseconds(v))
        }
        var buffer: [UInt8] = []
        PrometheusExposition.header("h_seconds", type: "histogram", help: "test", into: &buffer)
        PrometheusExposition.histogram("h_seconds", labels: PrometheusExposition.labels([("role", "r"), ("port", #"a"b\c"#)]),
                                       bucketLabels: bounds.map { PrometheusExposition.seconds(nanoseconds: $0) },
                                       ours.snapshot(), into: &buffer)
        let mine = try PrometheusText.parse(String(decoding: buffer, as: UTF8.self))
        let reference = try PrometheusText.parse(registry.emitToString())
        #expect(mine.count == bounds.count + 3)
        #expect(Set(mine.map(\.description)) == Set(reference.map(\.description)))
        // The `le` labels are written as swift-prometheus writes a Duration (`0.00005`, `2.5`, `1.0`).
        #expect(bounds.map { PrometheusExposition.seconds(nanoseconds: $0) }
            == Observability.durationBuckets.map(\.bucketRepresentation))
        #expect(ours.snapshot().count == values.count)
        #expect(ours.snapshot().sumNanoseconds == values.reduce(0, +))
    }

    @Test func secondsAreExact() {
        #expect(PrometheusExposition.seconds(nanoseconds: 0) == "0.0")
        #expect(PrometheusExposition.seconds(nanoseconds: 1) == "0.000000001")
        #expect(PrometheusExposition.seconds(nanoseconds: 1_500_000_000) == "1.5")
        #expect(PrometheusExposition.seconds(nanoseconds: 12_000_000_034) == "12.000000034")
    }

    /// A participant that throws on every fifth message: one on prefetch 1 (a read of the clock per message), one on
    /// prefetch 4 (workers on a feed, where a waiting delivery starts at the last handler's end), both in one
    /// process's ``Observability``.
    @Test func participantsCountIntoOneExposition() async throws {
        let observability = Observability()
        let broker = InMemoryBroker()
        let t = try await connected(broker)
        let part = Self.failingEveryFifth()
        var running: [RunningParticipant] = []
        for (role, prefetch) in [("single", 1), ("many", 4)] {
            var options = ParticipantOptions(prefetch: prefetch)
            options.metrics = observability.factory
            running.append(try await part.start(role: role, on: t, options: options, logger: testLogger()))
        }
        let n = 40
        for role in ["single", "many"] {
            for i in 0..<n { try await t.send(toInport: "\(role).IN", Message(json: .int(i))) }
        }
        for role in ["single", "many"] {
            let labels = ["role": role, "port": "in"]
            try await eventually("\(role): \(n) handled") {
                try PrometheusText.parse(String(decoding: observability.text(), as: UTF8.self))
                    .value("msgflo_participant_handler_duration_seconds_count", labels) == Double(n)
            }
        }
        let text = String(decoding: observability.text(), as: UTF8.self)
        let m = try PrometheusText.parse(text)
        for role in ["single", "many"] {
            let labels = ["role": role, "port": "in"]
            #expect(m.value("msgflo_participant_messages_in_total", labels) == Double(n))
            #expect(m.value("msgflo_participant_messages_out_total", ["role": role, "port": "out"]) == Double(n - n / 5))
            #expect(m.value("msgflo_participant_handler_errors_total", labels) == Double(n / 5))
            #expect(m.value("msgflo_participant_nacks_total", labels) == Double(n / 5))
            #expect(m.value("msgflo_participant_handler_duration_seconds_bucket", labels.merging(["le": "+Inf"]) { a, _ in a }) == Double(n))
            #expect(m.value("msgflo_participant_reconnects_total", ["role": role]) == 0)
            let buckets = m.filter { $0.name == "msgflo_participant_handler_duration_seconds_bucket" && $0.labels["role"] == role }
            #expect(buckets.count == Observability.durationBuckets.count + 1)
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value }, "buckets not cumulative")
            // Each handler takes well under 10 s, and the sum is of real durations: more than 0, less than 10 s each.
            let sum = m.value("msgflo_participant_handler_duration_seconds_sum", labels) ?? -1
            #expect(sum > 0 && sum < 10 * Double(n))
        }
        // Every family once, with both participants' series under it.
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        #expect(Set(types).count == types.count, "a family written twice: \(types)")
        #expect(types.contains("# TYPE msgflo_participant_handler_duration_seconds histogram"))
        for r in running { await r.stop() }
        await t.close()
    }

    /// `ParticipantOptions.metrics` with a factory of someone else's: the same names, labels and counts go there.
    @Test func anyOtherFactoryGetsTheSameMetrics() async throws {
        let metrics = TestMetrics()
        let t = try await connected()
        var options = ParticipantOptions(prefetch: 4)
        options.metrics = metrics
        let p = try await Self.failingEveryFifth().start(role: "other", on: t, options: options, logger: testLogger())
        let n = 20
        for i in 0..<n { try await t.send(toInport: "other.IN", Message(json: .int(i))) }
        let labels = [("role", "other"), ("port", "in")]
        try await eventually("\(n) timed") { (try? metrics.expectTimer("msgflo_participant_handler_duration_seconds", labels).values.count) == n }
        #expect(try metrics.expectCounter("msgflo_participant_messages_in_total", labels).totalValue == Int64(n))
        #expect(try metrics.expectCounter("msgflo_participant_handler_errors_total", labels).totalValue == Int64(n / 5))
        #expect(try metrics.expectCounter("msgflo_participant_nacks_total", labels).totalValue == Int64(n / 5))
        #expect(try metrics.expectCounter("msgflo_participant_messages_out_total", [("role", "other"), ("port", "out")]).totalValue
            == Int64(n - n / 5))
        #expect(try metrics.expectTimer("msgflo_participant_handler_duration_seconds", labels).values.allSatisfy { $0 >= 0 })
        await p.stop()
        await t.close()
    }

    static func failingEveryFifth() -> Participant {
        Participant(component: "EveryFifthFails", inports: ["in"], outports: ["out"]) { _, msg, ctx in
            if case .int(let i) = msg.json, i % 5 == 0 { throw MsgFloError(.invalidArgument, "fifth") }
            try await ctx.send("out", msg)
        }
    }
}

extension MetricSample: CustomStringConvertible {
    public var description: String { "\(name)\(labels.sorted { $0.key < $1.key })=\(value)" }
}
