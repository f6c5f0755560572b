import ArgumentParser
import Foundation
import MsgFlo
import Synchronization

/// `msgflo-call`: sends a request into a queue and prints the reply (request/reply, issue 14).
package struct CallCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-call",
        abstract: "Send a request into a queue and print the reply.",
        discussion: """
        The request (JSON, from --json, --file or standard input) goes into queue Q with a reply-to and a fresh \
        correlation id; the answer with that correlation id is printed on standard output, as its bytes are (text; \
        control characters escaped). No answer within --timeout: one line on standard error, exit status 1.

        AMQP replies come through RabbitMQ's direct reply-to (amq.rabbitmq.reply-to: no queue is made). MQTT needs \
        version 5 (a broker URL with ?protocol=5): the reply comes on a private response topic. MQTT 3.1.1 cannot \
        carry a reply-to; the call fails at once saying so.

        With --repeat N the request is sent N times, --concurrency at a time, and instead of the replies one line \
        of figures is printed: calls per second and latency percentiles.

        Example: msgflo-call --queue rpc.IN --json '"6*7"' --header x-trace=abc
        """)

    @OptionGroup package var brokerOptions: BrokerOptions

    @Option(help: ArgumentHelp("The queue (AMQP) or topic (MQTT) to call.", valueName: "Q"))
    package var queue: String?

    @Option(help: ArgumentHelp("The request, as JSON text.", valueName: "DATA"))
    package var json: String?

    @Option(help: ArgumentHelp("Read the request from this file.", valueName: "PATH"))
    package var file: String?

    @Option(help: ArgumentHelp("Seconds to wait for the reply.", valueName: "SECONDS"))
    package var timeout: Double = 10

    @Option(name: .customLong("header"), help: ArgumentHelp(
        "A header of the request (repeatable). true/false are booleans, integers numbers, the rest text.",
        valueName: "KEY=VALUE"))
    package var headers: [String] = []

    @Option(help: ArgumentHelp("Make this many calls and print figures instead of replies.", valueName: "N"))
    package var `repeat`: Int = 1

    @Option(help: ArgumentHelp("Calls in flight at once with --repeat.", valueName: "C"))
    package var concurrency: Int = 1

    package init() {}

    package func validate() throws {
        guard let queue, !queue.isEmpty else { throw ValidationError("Missing queue to call (--queue)") }
        if json != nil && file != nil { throw ValidationError("give the request with --json or --file, not both") }
        guard timeout > 0, timeout.isFinite, timeout <= 86_400 else {
            throw ValidationError("--timeout must be a positive number of seconds (at most a day)")
        }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be 1 or more") }
        guard concurrency >= 1, concurrency <= 100_000 else { throw ValidationError("--concurrency must be 1…100000") }
        _ = try Self.parseHeaders(headers)
    }

    static func parseHeaders(_ list: [String]) throws -> [String: MessageProperties.HeaderValue] {
        var out: [String: MessageProperties.HeaderValue] = [:]
        for h in list {
            guard let eq = h.firstIndex(of: "="), eq != h.startIndex else {
                throw ValidationError("--header '\(SafeText.escape(h, limit: 60))' is not KEY=VALUE")
            }
            out[String(h[..<eq])] = .init(parsing: String(h[h.index(after: eq)...]))
        }
        do { try MessageProperties(headers: out).check(what: "--header") } catch { throw ValidationError(error.message) }
        return out
    }

    package func run() async throws {
        let source = try SendMessage.Source.given(json: json, file: file, what: "request")
        var request = try SendMessage.payload(from: source)
        request.properties.headers = try Self.parseHeaders(headers)
        request.properties.contentType = "application/json"
        try WireName.check(queue!, WireName.Broker(try brokerOptions.url()), what: "--queue")
        try await brokerOptions.withConnection(tool: Self.configuration.commandName!) { transport in
            try await call(request, over: transport)
        }
    }

    private func call(_ request: Message, over transport: any Transport) async throws {
        let caller = try await RPCCaller.start(on: transport)
        do {
            // An exported inport of a graph is an exchange (AMQP) bound to the node's queue; an inport queue has
            // an exchange of its own name too. Only a bare queue goes straight in, mandatory (typos fail at once).
            let route: RPCCaller.Route = try await transport.exchangeExists(queue!) == true ? .exchange : .routedQueue
            if `repeat` == 1 {
                let reply = try await callOnce(caller, request, route: route)
                Output.line(String(decoding: reply.bytes, as: UTF8.self))
            } else {
                let figures = try await CallLoad.run(caller: caller, queue: queue!, request: request,
                                                     route: route == .exchange ? .exchange : .queue,
                                                     count: `repeat`, concurrency: concurrency,
                                                     timeout: .seconds(double: timeout))
                Output.line(figures.summary)
            }
        } catch {
            await caller.close()
            throw error
        }
        await caller.close()
    }

    private func callOnce(_ caller: RPCCaller, _ request: Message, route: RPCCaller.Route) async throws -> Message {
        do {
            return try await caller.call(queue!, request, timeout: .seconds(double: timeout), route: route)
        } catch let error as MsgFloError where error.code == .notFound {
            let near = await NearMatches.existing(queue!, on: caller.transport)
            throw ToolFailure("no queue '\(queue!)' on \(caller.transport.broker): the request went nowhere"
                              + NearMatches.suffix(near))
        }
    }
}

/// Calls made in a loop, for `msgflo-call --repeat` and `Scripts/bench rpc`.
package enum CallLoad {
    package struct Figures: Sendable {
        package var calls: Int
        package var seconds: Double
        /// Latencies in seconds, sorted.
        package var latencies: [Double]

        package var callsPerSecond: Double { Double(calls) / max(seconds, 1e-9) }
        package func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            let i = min(latencies.count - 1, Int((p / 100 * Double(latencies.count)).rounded(.up)) - 1)
            return latencies[max(0, i)]
        }
        package var summary: String {
            func ms(_ s: Double) -> String { String(format: "%.3f", s * 1000) }
            return "calls=\(calls) seconds=\(String(format: "%.3f", seconds)) calls/s=\(String(format: "%.0f", callsPerSecond)) "
                + "p50_ms=\(ms(percentile(50))) p90_ms=\(ms(percentile(90))) p99_ms=\(ms(percentile(99))) max_ms=\(ms(latencies.last ?? 0))"
        }
    }

    /// Makes `count` calls, `concurrency` at a time; each reply must carry its own request's correlation id (the
    /// caller checks). The first failure (a timeout) ends the run with that error.
    package static func run(caller: RPCCaller, queue: String, request: Message, route: RPCCaller.Route = .queue,
                           count: Int, concurrency: Int, timeout: Duration) async throws -> Figures {
        let clock = ContinuousClock()
        let start = clock.now
        let workers = min(concurrency, count)
        // The workers run where the replies arrive (the transport's I/O thread when it has one, as the
        // participants' handlers do): a reply then resumes its call without a hand-over to another thread.
        let executor = caller.transport.preferredExecutor
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for w in 0..<workers {
                let share = count / workers + (w < count % workers ? 1 : 0)
                group.addTask(executorPreference: executor) {
                    var mine: [Double] = []
                    mine.reserveCapacity(share)
                    for _ in 0..<share {
                        let t0 = clock.now
                        _ = try await caller.call(queue, request, timeout: timeout, route: route)
                        mine.append((clock.now - t0).inSeconds)
                    }
                    return mine
                }
            }
            var all: [Double] = []
            all.reserveCapacity(count)
            for try await part in group { all += part }
            return all
        }
        return Figures(calls: latencies.count, seconds: (clock.now - start).inSeconds,
                       latencies: latencies.sorted())
    }
}
