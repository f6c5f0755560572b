import CoreMetrics
import MsgFloObserve
import Synchronization

/// The metrics a participant records per message, by port: messages in and out, handler seconds, handler errors,
/// nacks (names and labels: docs/observe.md). With an ``Observability``'s factory (`--metrics-port`) they are
/// atomics owned here and written at scrape time (``ParticipantMetricsCollector``); with any other swift-metrics
/// factory they are that factory's counters and timer.
enum InportMetrics: Sendable {
    case atomic(ParticipantMetricsCollector.Inport)
    case swiftMetrics(received: CoreMetrics.Counter, duration: CoreMetrics.Timer, errors: CoreMetrics.Counter,
                      nacks: CoreMetrics.Counter)

    init(_ factory: any MetricsFactory, role: String, port: String) {
        if let observed = factory as? ObservabilityMetricsFactory {
            self = .atomic(ParticipantMetricsCollector.of(observed).inport(role: role, port: port))
            return
        }
        let labels = [("role", role), ("port", port)]
        self = .swiftMetrics(
            received: Counter(label: ParticipantMetricsCollector.received, dimensions: labels, factory: factory),
            duration: Timer(label: ParticipantMetricsCollector.duration, dimensions: labels, factory: factory),
            errors: Counter(label: ParticipantMetricsCollector.errors, dimensions: labels, factory: factory),
            nacks: Counter(label: ParticipantMetricsCollector.nacks, dimensions: labels, factory: factory))
    }

    // Not inlined, so that a profile shows the metrics' own share of the message path (a call costs ~1 ns).
    /// A message handled (its handler took `nanoseconds`, error port and nack included).
    @inline(never)
    func handled(nanoseconds: Int, nacked: Bool) {
        switch self {
        case .atomic(let p):
            p.received.increment()
            p.duration.record(nanoseconds: nanoseconds)
            if nacked { p.nacks.increment() }
        case .swiftMetrics(let received, let duration, _, let nacks):
            received.increment()
            duration.recordNanoseconds(Int64(nanoseconds))
            if nacked { nacks.increment() }
        }
    }

    @inline(never)
    func failed() {
        switch self {
        case .atomic(let p): p.errors.increment()
        case .swiftMetrics(_, _, let errors, _): errors.increment()
        }
    }
}

/// An outport's sent counter.
enum OutportCounter: Sendable {
    case atomic(AtomicCounter)
    case swiftMetrics(CoreMetrics.Counter)

    init(_ factory: any MetricsFactory, role: String, port: String) {
        if let observed = factory as? ObservabilityMetricsFactory {
            self = .atomic(ParticipantMetricsCollector.of(observed).outport(role: role, port: port))
        } else {
            self = .swiftMetrics(Counter(label: ParticipantMetricsCollector.sent, dimensions: [("role", role), ("port", port)],
                                         factory: factory))
        }
    }

    @inline(never)
    func increment() {
        switch self {
        case .atomic(let c): c.increment()
        case .swiftMetrics(let c): c.increment()
        }
    }
}

/// Every participant's per-port metrics in one process (one ``Observability``), written as whole families when
/// `/metrics` is scraped. A role's port met twice (the same role started again in the process) shares its series,
/// as swift-prometheus' registry did.
final class ParticipantMetricsCollector: MetricsCollector {
    static let received = "msgflo_participant_messages_in_total"
    static let sent = "msgflo_participant_messages_out_total"
    static let duration = "msgflo_participant_handler_duration_seconds"
    static let errors = "msgflo_participant_handler_errors_total"
    static let nacks = "msgflo_participant_nacks_total"

    final class Inport: Sendable {
        let received = AtomicCounter()
        let duration = NanosecondHistogram(bounds: Observability.durationBucketNanoseconds)
        let errors = AtomicCounter()
        let nacks = AtomicCounter()
    }

    private struct Key: Hashable { var role: String; var port: String }
    private struct State {
        var inports: [Key: Inport] = [:]
        var outports: [Key: AtomicCounter] = [:]
        /// In the order they were made, with their labels rendered once.
        var inportOrder: [(labels: [UInt8], metrics: Inport)] = []
        var outportOrder: [(labels: [UInt8], metrics: AtomicCounter)] = []
    }

    private let state = Mutex(State())
    private let bucketLabels = Observability.durationBucketNanoseconds.map { PrometheusExposition.seconds(nanoseconds: $0) }

    static func of(_ factory: ObservabilityMetricsFactory) -> ParticipantMetricsCollector {
        factory.collectors.collector { ParticipantMetricsCollector() }
    }

    func inport(role: String, port: String) -> Inport {
        state.withLock { s in Self.series(Key(role: role, port: port), in: &s.inports, order: &s.inportOrder, make: Inport.init) }
    }

    func outport(role: String, port: String) -> AtomicCounter {
        state.withLock { s in
            Self.series(Key(role: role, port: port), in: &s.outports, order: &s.outportOrder, make: AtomicCounter.init)
        }
    }

    /// The series of `key`: the one made before, or a new one, listed with its labels rendered.
    private static func series<T>(_ key: Key, in made: inout [Key: T], order: inout [(labels: [UInt8], metrics: T)],
                                  make: () -> T) -> T {
        if let found = made[key] { return found }
        let new = make()
        made[key] = new
        order.append((PrometheusExposition.labels([("role", key.role), ("port", key.port)]), new))
        return new
    }

    func emit(into buffer: inout [UInt8]) {
        let (inports, outports) = state.withLock { ($0.inportOrder, $0.outportOrder) }
        typealias P = PrometheusExposition
        if !inports.isEmpty {
            P.header(Self.received, type: "counter", help: "Messages taken from an inport", into: &buffer)
            for p in inports { P.sample(Self.received, labels: p.labels, value: String(p.metrics.received.value), into: &buffer) }
        }
        if !outports.isEmpty {
            P.header(Self.sent, type: "counter", help: "Messages sent on an outport", into: &buffer)
            for p in outports { P.sample(Self.sent, labels: p.labels, value: String(p.metrics.value), into: &buffer) }
        }
        guard !inports.isEmpty else { return }
        P.header(Self.duration, type: "histogram", help: "Seconds a handler took, from delivery to ack or nack", into: &buffer)
        for p in inports {
            P.histogram(Self.duration, labels: p.labels, bucketLabels: bucketLabels, p.metrics.duration.snapshot(), into: &buffer)
        }
        P.header(Self.errors, type: "counter", help: "Handlers that threw", into: &buffer)
        for p in inports { P.sample(Self.errors, labels: p.labels, value: String(p.metrics.errors.value), into: &buffer) }
        P.header(Self.nacks, type: "counter", help: "Messages nacked", into: &buffer)
        for p in inports { P.sample(Self.nacks, labels: p.labels, value: String(p.metrics.nacks.value), into: &buffer) }
    }
}
