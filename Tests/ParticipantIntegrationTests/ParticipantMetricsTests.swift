import Foundation
import MsgFlo
import MsgFloParticipant
import TestSupport
import Testing

/// A participant's `--metrics-port`: Prometheus text with per-port counters and the handler histogram that move as
/// messages flow, `/healthz` and `/readyz`; `--log-format json` lines.
@Suite struct ParticipantMetricsTests {
    @Test(arguments: TestBrokers.Kind.allCases)
    func metricsCountMessagesPerPort(_ kind: TestBrokers.Kind) async throws {
        let t = try await connectedTransport(kind)
        defer { Task { await t.close() } }
        let role = TestBrokers.unique("metrics")
        let out = try await Collector.outport("\(role).OUT", on: t)
        let port = freeTCPPort()
        let child = try await Child(participantExecutable, ["Repeat", role, "--broker", try TestBrokers.url(kind).unredacted,
                                                      "--metrics-port", "\(port)", "--log-format", "json"])
        defer { child.terminate() }
        _ = try await child.ready()
        let base = "http://127.0.0.1:\(port)"
        try await eventually("metrics server up") { await httpGet(base + "/healthz").status == 200 }
        let ready = await httpGet(base + "/readyz")
        #expect(ready.status == 200 && ready.body.contains("connected"), "\(ready.body)")

        var m = try PrometheusText.parse(await httpGet(base + "/metrics").body)
        let labels = ["role": role, "port": "in"]
        #expect(m.value("msgflo_participant_messages_in_total", labels) == 0)
        #expect(m.value("msgflo_participant_messages_out_total", ["role": role, "port": "out"]) == 0)

        let n = 25
        for i in 0..<n { try await t.send(toInport: "\(role).IN", Message(json: .int(i))) }
        _ = try await out.wait(for: n)
        try await eventually("counters at \(n)") {
            m = try PrometheusText.parse(await httpGet(base + "/metrics").body)
            return m.value("msgflo_participant_messages_in_total", labels) == Double(n)
                && m.value("msgflo_participant_messages_out_total", ["role": role, "port": "out"]) == Double(n)
        }
        #expect(m.value("msgflo_participant_handler_duration_seconds_count", labels) == Double(n))
        #expect(m.value("msgflo_participant_handler_duration_seconds_bucket", labels.merging(["le": "+Inf"]) { a, _ in a }) == Double(n))
        #expect(m.value("msgflo_participant_handler_duration_seconds_sum", labels) ?? -1 >= 0)
        #expect(m.value("msgflo_participant_handler_errors_total", labels) == 0)
        #expect(m.value("msgflo_participant_nacks_total", labels) == 0)
        #expect(m.value("msgflo_participant_reconnects_total", ["role": role]) == 0)
        // Every metric name follows the conventions: msgflo_ prefix, counters end in _total, durations in _seconds.
        for s in m where s.name.hasPrefix("msgflo_") {
            #expect(s.name.hasSuffix("_total") || s.name.contains("_seconds"), "\(s.name)")
        }
        child.terminate()
        #expect(try await child.exitCode() == 0)
        // Whatever it logged is JSON, one object per line.
        for line in child.stderr.split(separator: "\n") {
            let v = try JSONValue(parsing: String(line))
            #expect(v["level"] != nil && v["message"] != nil, "\(line)")
        }
    }

    @Test func badMetricsPortAndLogFormatAreOneLineErrors() async throws {
        for args in [["--metrics-port", "70000"], ["--log-format", "xml"]] {
            let child = try await Child(participantExecutable, ["Repeat", "r"] + args)
            #expect(try await child.exitCode() == 1)
            #expect(child.stderr.split(separator: "\n").count == 1, "\(child.stderr)")
        }
    }
}
