import Foundation
import Logging
import MsgFlo

/// Broker options shared by every tool.
package enum BrokerConnection {
    /// Resolves `--broker` as every msgflo program does (`--broker`, `MSGFLO_BROKER`, `CLOUDAMQP_URL`,
    /// `amqp://localhost`), as a one-line error when the URL is bad.
    package static func resolve(_ argument: String?, environment: [String: String]) throws -> BrokerURL {
        do {
            return try BrokerURL.resolve(argument, environment: environment)
        } catch {
            throw ToolFailure(error.message)
        }
    }

    /// Connects within `timeout` or fails with a one-line error naming the broker (password hidden). Never hangs:
    /// a connect attempt that does not return in time is abandoned.
    package static func connect(_ url: BrokerURL, timeout: Duration, tool: String,
                               environment: ToolEnvironment = .current) async throws -> any Transport {
        let logger = ToolLogging.logger(tool, environment: environment.environment)
        let timeouts = TransportTimeouts(connect: timeout, operation: .seconds(10), reconnectWait: timeout)
        let transport: any Transport
        do {
            transport = try environment.makeTransport(url, logger, timeouts)
        } catch let error as MsgFloError {
            throw ToolFailure(error.message)
        }
        do {
            try await withDeadline(timeout, what: "could not connect to \(url) within \(timeout.seconds) s") {
                do {
                    try await transport.connect()
                } catch let error as MsgFloError {
                    // The transports' messages usually name the broker already (redacted): say it once.
                    throw ToolFailure(error.message.contains(url.description) ? error.message
                                      : "could not connect to \(url): \(error.message)")
                }
            }
        } catch {
            // Not abandoned: its I/O thread stops trying. Closing is bounded too (a connect stuck in C may hold it).
            _ = try? await withDeadline(.seconds(1), what: "close") { await transport.close() }
            throw error
        }
        return transport
    }
}

extension Duration {
    /// Whole and fractional seconds, for messages: `10`, `0.5`.
    package var seconds: String {
        let (s, atto) = components
        if atto == 0 { return String(s) }
        let value = Double(s) + Double(atto) / 1e18
        return String(format: "%g", value)
    }

    package static func seconds(double value: Double) -> Duration {
        .nanoseconds(Int64((value * 1e9).rounded()))
    }
}

/// Runs `body` and fails with `what` if it has not finished after `timeout`. The body runs in an unstructured task so
/// that a call stuck in C cannot hold the caller past the deadline.
package func withDeadline<T: Sendable>(_ timeout: Duration, what: String,
                                      _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = DeadlineRace<T>()
    let work = Task { race.finish(with: await Result { try await body() }) }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        race.finish(with: .failure(ToolFailure(what)))
    }
    let result = await race.wait()
    timer.cancel()
    if case .failure = result { work.cancel() }
    return try result.get()
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

import Synchronization

/// The first result wins; later ones are dropped. The continuation is resumed exactly once.
final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<Result<T, any Error>, Never>?
    }
    private let state = Mutex(State())

    func finish(with result: Result<T, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Result<T, any Error>, Never>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: result)
    }

    func wait() async -> Result<T, any Error> {
        await withCheckedContinuation { c in
            let ready = state.withLock { s -> Result<T, any Error>? in
                if let r = s.result { return r }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}
