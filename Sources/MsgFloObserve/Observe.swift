import CoreMetrics
import HTTPTypes
import Hummingbird
import Logging
import MsgFlo
import NIOCore
import Prometheus
import ServiceLifecycle

/// What `/readyz` answers: 200 with `detail` when ready, else 503 with it.
package struct Readiness: Sendable {
    package var ready: Bool
    package var detail: String
    package init(ready: Bool, detail: String) {
        self.ready = ready
        self.detail = detail
    }
}

/// One process's metrics: a Prometheus registry and the swift-metrics factory that writes into it, plus the
/// ``MetricsCollectors`` whose families (a participant's per-message metrics, kept in atomics) are written at scrape
/// time. Metrics are made once (per port, per role) and then only incremented: no lookup and no allocation. Not
/// bootstrapped globally (`MetricsSystem`), so several participants, a daemon and tests may live in one process with
/// registries of their own.
package final class Observability: Sendable {
    package let registry: PrometheusCollectorRegistry
    package let factory: ObservabilityMetricsFactory
    package var collectors: MetricsCollectors { factory.collectors }

    /// Duration buckets from 50 µs to 10 s: handler times of a relay are microseconds, a reconcile can take seconds.
    package static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    package init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = Self.durationBuckets
        factory = ObservabilityMetricsFactory(prometheus: f, collectors: MetricsCollectors())
    }

    /// ``durationBuckets`` in nanoseconds, for a ``NanosecondHistogram``.
    package static let durationBucketNanoseconds: [Int] = durationBuckets.map { d in
        let c = d.components
        return Int(c.seconds) * 1_000_000_000 + Int(c.attoseconds / 1_000_000_000)
    }

    /// The Prometheus text exposition (format 0.0.4).
    package func text() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(4096)
        registry.emit(into: &buffer)
        collectors.emit(into: &buffer)
        return buffer
    }
}

/// `/metrics`, `/healthz` and `/readyz` on a Hummingbird router: the daemon adds them to its runtime server, a
/// participant's ``MetricsServer`` serves nothing else.
package enum ObserveRoutes {
    package static func add<Context: RequestContext>(
        to router: Router<Context>, observability: Observability,
        beforeScrape: @escaping @Sendable () async -> Void = {},
        readiness: @escaping @Sendable () async -> Readiness
    ) {
        router.get("/metrics") { _, _ -> Response in
            await beforeScrape()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: observability.text())))
        }
        router.get("/healthz") { _, _ -> Response in
            plain(.ok, "ok\n")
        }
        router.get("/readyz") { _, _ -> Response in
            let r = await readiness()
            return plain(r.ready ? .ok : .serviceUnavailable, (r.ready ? "ready: " : "not ready: ") + SafeText.escape(r.detail) + "\n")
        }
    }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A small HTTP server with only ``ObserveRoutes``, as a `Service` (a participant's `--metrics-port`).
package struct MetricsServer: Service {
    let observability: Observability
    let port: Int
    let bindAddress: String
    let logger: Logger
    let readiness: @Sendable () async -> Readiness
    let onListening: @Sendable (Int) async -> Void

    package init(observability: Observability, port: Int, bindAddress: String = "0.0.0.0", logger: Logger,
                readiness: @escaping @Sendable () async -> Readiness,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.observability = observability
        self.port = port
        self.bindAddress = bindAddress
        self.logger = logger
        self.readiness = readiness
        self.onListening = onListening
    }

    package func run() async throws {
        let router = Router()
        ObserveRoutes.add(to: router, observability: observability, readiness: readiness)
        var quiet = logger
        quiet.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(bindAddress, port: port), serverName: "msgflo-metrics"),
            onServerRunning: { [onListening, port] channel in await onListening(channel.localAddress?.port ?? port) },
            logger: quiet)
        try await app.run()
    }
}
