import ArgumentParser
import Foundation
import Logging
import MsgFloCLI
import MsgFlo

/// A failure a tool reports to its user: one line on stderr, exit status 1.
package struct ToolFailure: CommandFailure, CustomStringConvertible, Sendable {
    package let message: String
    package init(_ message: String) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    package var description: String { message }
}

/// What a tool needs from the outside world, so that tests can run the same code on an in-memory broker.
package struct ToolEnvironment: Sendable {
    /// Makes the transport for a broker URL (the executables pass `Transports.make`).
    package typealias TransportFactory = @Sendable (BrokerURL, Logger, TransportTimeouts) throws -> any Transport
    package var makeTransport: TransportFactory
    package var environment: [String: String]

    package init(makeTransport: @escaping TransportFactory,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.makeTransport = makeTransport
        self.environment = environment
    }

    /// The environment a command runs in: set by ``ToolMain/run(_:arguments:transports:)`` (the executables pass
    /// `Transports.make`), or by a test with `ToolEnvironment.$current.withValue`.
    @TaskLocal package static var current = ToolEnvironment(makeTransport: { _, _, _ in
        preconditionFailure("ToolEnvironment.current has no transport factory: run commands through ToolMain.run")
    })
}

/// Runs a tool through the project's front door (``CommandMain``: `--help` on stdout with exit 0; a bad argument or
/// any failure as one line on stderr and exit 1, never a usage dump, never a stack trace, never a password), with the
/// broker connections of ``ToolEnvironment``.
package enum ToolMain {
    package static func run<C: ParsableCommand>(
        _ type: C.Type, arguments: [String]? = nil,
        transports: @escaping ToolEnvironment.TransportFactory
    ) async -> Never {
        let environment = ToolEnvironment(makeTransport: transports)
        let status = await ToolEnvironment.$current.withValue(environment) {
            await execute(type, arguments: arguments)
        }
        CommandMain.exit(status)
    }

    /// Parses and runs a command; returns the exit status. Failures are printed (one line on stderr).
    package static func execute<C: ParsableCommand>(_ type: C.Type, arguments: [String]?,
                                                   errorLine: (String) -> Void = Output.error) async -> Int32 {
        await CommandMain.execute(type, arguments: arguments, errorLine: errorLine)
    }
}

/// Output that reaches the terminal at once, even when stdout is a pipe. Each call is one line: control characters
/// in the text are escaped (``SafeText``; tabs kept on stdout, where msgflo's formats have them), which leaves
/// compact JSON valid JSON; error lines are capped too.
package enum Output {
    package static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((SafeText.escape(text, limit: nil, keepingTabs: true) + "\n").utf8))
    }

    package static func error(_ text: String) {
        let line = SafeText.escape(BrokerURL.redactCredentials(in: text), limit: SafeText.lineLimit)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Log output of the libraries the tools use. Quiet unless asked: `DEBUG=msgflo*` (msgflo's switch) or
/// `MSGFLO_LOG_LEVEL=debug|info|warning|…`; `MSGFLO_LOG_FORMAT=json` (or `--log-format json`) for JSON lines. Failures reach the user as the tool's own one-line error instead.
enum ToolLogging {
    static func logger(_ label: String, environment: [String: String]) -> Logger {
        CommandLogging.logger(label, level: CommandLogging.level(environment, default: .critical),
                              format: LogFormat.resolve(nil, environment: environment) ?? .text)
    }
}
