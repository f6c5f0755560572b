@_exported import MsgFloParticipant
import Logging
import Synchronization

/// Runs a participant in the test process, without a broker, for its author's unit tests: feed its inports messages
/// (and IIPs through the options), then look at what it sent on each outport, which inputs it dead-lettered, and
/// what it logged.
///
/// Behind it is the SDK's own code on ``InMemoryTransport`` (the transport every test above the brokers uses): the
/// same handler loop, acknowledgements, prefetch, error port and dead-lettering as on RabbitMQ or Mosquitto.
///
/// ```swift
/// let t = try await ParticipantTester.start(myParticipant)
/// try await t.send("in", json: ["x": 1])
/// let out = try await t.waitForSent(on: "out", count: 1)
/// #expect(out[0].json == ["y": 2])
/// try await t.settle()            // every input handled and acknowledged (or dead-lettered)
/// await t.stop()
/// ```
public final class ParticipantTester: Sendable {
    /// The running participant (its definition: queue names, ports).
    public let running: RunningParticipant
    /// The transport it runs on, for tests that want to look at queues themselves.
    public let transport: InMemoryTransport
    private let recorder: Recorder
    /// The inport queues, their dead-letter queues and the outports' taps: settled when all of them are.
    private let followed: [String]

    private init(running: RunningParticipant, transport: InMemoryTransport, recorder: Recorder, followed: [String]) {
        self.running = running
        self.transport = transport
        self.recorder = recorder
        self.followed = followed
    }

    /// Starts `participant` as `role` on a private in-memory broker. Each outport is tapped (everything it sends is
    /// kept, in order) and each inport's dead letters are kept; the participant's logger is captured (see ``logs``)
    /// unless `logger` is given.
    public static func start(_ participant: Participant, role: String = "test",
                             options: ParticipantOptions = ParticipantOptions(),
                             logger: Logger? = nil) async throws -> ParticipantTester {
        let transport = InMemoryTransport(broker: InMemoryBroker(), url: BrokerURL(scheme: .amqp, host: "in-memory"))
        try await transport.connect()
        let recorder = Recorder()
        let captured = Logger(label: "msgflo.participant") { label in CapturingLogHandler(label: label, recorder: recorder) }
        // The taps and dead-letter queues exist before the participant runs, so that its IIPs and its first sends
        // are kept too. Queue names are the ones the participant will use (role.OUT, explicit and optioned queues).
        let named = try participant.naming(options.queues)
        let definition = named.definition(role: role, id: options.id ?? role, heartbeat: nil, inqueue: nil)
        var followed: [String] = []
        for port in definition.outports {
            guard let exchange = port.queue else { continue }
            let tap = exchange + ".tester-tap"
            try await transport.declareOutport(exchange)
            try await transport.declareInport(tap)
            try await transport.addBinding(Binding(src: exchange, tgt: tap))
            recorder.follow(try await transport.consume(tap, options: ConsumeOptions(prefetch: 1_000)), as: .outport(port.id))
            followed.append(tap)
        }
        for port in definition.inports {
            guard let queue = port.queue else { continue }
            let dead = queue + ".tester-dead-letters"
            try await transport.declareInport(queue)
            try await transport.declareInport(dead)
            try await transport.addBinding(Binding(.deadLetter, src: queue, tgt: dead))
            recorder.follow(try await transport.consume(dead, options: ConsumeOptions(prefetch: 1_000)), as: .deadLetters(port.id))
            followed += [queue, dead]
        }
        let running = try await participant.start(role: role, on: transport, options: options, logger: logger ?? captured)
        return ParticipantTester(running: running, transport: transport, recorder: recorder, followed: followed)
    }

    // MARK: Input

    /// Sends `message` to inport `inport` (by port name, as the participant declares it).
    public func send(_ inport: String, _ message: Message) async throws {
        try await transport.send(toInport: try queue(ofInport: inport), message)
    }

    /// Sends a JSON value to inport `inport`.
    public func send(_ inport: String, json: JSONValue) async throws {
        try await send(inport, Message(json: json))
    }

    /// Sends text (UTF-8 bytes, as they are) to inport `inport`.
    public func send(_ inport: String, text: String) async throws {
        try await send(inport, Message(text: text))
    }

    /// Sends a Codable value (JSON, keys in declaration order) to inport `inport`.
    public func send(_ inport: String, encoding value: some Encodable) async throws {
        try await send(inport, try Message(encoding: value))
    }

    // MARK: Output

    /// What the participant has sent on `outport` so far, in order.
    public func sent(on outport: String) -> [Message] { recorder.messages(.outport(outport)) }

    /// Inputs of `inport` that were dead-lettered (a handler that threw with no error port, or `ctx.nack()`).
    public func deadLettered(from inport: String) -> [Message] { recorder.messages(.deadLetters(inport)) }

    /// What the participant logged (through its participant logger), in order.
    public var logs: [LogRecord] { recorder.logs }

    /// Waits until at least `count` messages were sent on `outport`; returns all sent there so far.
    @discardableResult
    public func waitForSent(on outport: String, count: Int, timeout: Duration = .seconds(10)) async throws -> [Message] {
        guard running.definition.outport(outport) != nil else {
            throw MsgFloError(.notFound, "\(running.role) has no outport '\(outport)'")
        }
        try await wait("\(count) messages on outport \(outport) (have \(sent(on: outport).count))", timeout: timeout) {
            self.sent(on: outport).count >= count
        }
        return sent(on: outport)
    }

    /// Waits until every message sent to an inport has been handled and settled (acknowledged or dead-lettered), and
    /// everything that followed from it is recorded: ``sent(on:)`` and ``deadLettered(from:)`` are complete then.
    public func settle(timeout: Duration = .seconds(10)) async throws {
        let queues = followed
        try await wait("all inputs settled", timeout: timeout) {
            self.running.inFlight == 0 && queues.allSatisfy { (self.transport.memory.unsettled($0) ?? 0) == 0 }
        }
    }

    /// Stops the participant gracefully (handlers in hand finish) and closes the in-memory transport.
    public func stop() async {
        await running.stop()
        await recorder.stop()
        await transport.close()
    }

    private func queue(ofInport inport: String) throws -> String {
        guard let port = running.definition.inport(inport) else {
            throw MsgFloError(.notFound, "\(running.role) has no inport '\(inport)'")
        }
        guard let queue = port.queue else {
            throw MsgFloError(.invalidArgument, "inport '\(inport)' of \(running.role) is hidden: it has no queue")
        }
        return queue
    }

    private func wait(_ what: String, timeout: Duration, _ condition: @Sendable () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pause = Duration.milliseconds(1)
        while !condition() {
            guard clock.now < deadline else { throw MsgFloError(.timeout, "timed out after \(timeout) waiting for \(what)") }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(50))
        }
    }
}

/// One line the participant logged.
public struct LogRecord: Sendable, Equatable, CustomStringConvertible {
    public var level: Logger.Level
    public var message: String
    public var metadata: [String: String]

    public var description: String { "\(level): \(message)" }
}

/// Keeps what the taps, the dead-letter queues and the logger see.
final class Recorder: Sendable {
    enum Source: Hashable, Sendable { case outport(String), deadLetters(String) }

    private struct State {
        var messages: [Source: [Message]] = [:]
        var logs: [LogRecord] = []
        var subscriptions: [Subscription] = []
        var pumps: [Task<Void, Never>] = []
    }

    private let state = Mutex(State())

    func follow(_ subscription: Subscription, as source: Source) {
        // One reader per tap for as long as the tester lives; ended by stop() (cancelling the subscription ends it).
        let pump = Task { [weak self] in
            for await delivery in subscription {
                self?.state.withLock { $0.messages[source, default: []].append(delivery.message) }
                delivery.ack()
            }
        }
        state.withLock { s in
            s.subscriptions.append(subscription)
            s.pumps.append(pump)
        }
    }

    func messages(_ source: Source) -> [Message] { state.withLock { $0.messages[source] ?? [] } }

    var logs: [LogRecord] { state.withLock { $0.logs } }

    func log(_ record: LogRecord) { state.withLock { $0.logs.append(record) } }

    func stop() async {
        let (subscriptions, pumps) = state.withLock { s in
            defer { s.subscriptions = []; s.pumps = [] }
            return (s.subscriptions, s.pumps)
        }
        for s in subscriptions { await s.cancel() }
        for p in pumps { p.cancel() }
    }
}

/// A swift-log handler that hands every record to the tester.
struct CapturingLogHandler: LogHandler {
    let label: String
    let recorder: Recorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        recorder.log(LogRecord(level: event.level, message: event.message.description, metadata: all.mapValues { "\($0)" }))
    }
}
