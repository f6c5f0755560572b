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
    /// at the deadline the connect is cancelled, which fails it at once and closes the transport.
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
            await transport.close()
            throw error
        }
        return transport
    }

    /// The scoped form of ``connect(_:timeout:tool:environment:)``: connects within `timeout`, runs `body` with the
    /// transport, and closes it whatever happens (return, throw, cancellation).
    package static func withConnection<R>(_ url: BrokerURL, timeout: Duration, tool: String,
                                          environment: ToolEnvironment = .current,
                                          isolation: isolated (any Actor)? = #isolation,
                                          _ body: (any Transport) async throws -> R) async throws -> R {
        let transport = try await connect(url, timeout: timeout, tool: tool, environment: environment)
        return try await transport.closing { try await body(transport) }
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

/// Runs `body` and fails with `what` if it has not finished after `timeout`: then `body` is cancelled and awaited
/// (transport calls fail at once when cancelled; the management API's requests too).
package func withDeadline<T: Sendable>(_ timeout: Duration, what: String,
                                      _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw ToolFailure(what) }
        return value
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
