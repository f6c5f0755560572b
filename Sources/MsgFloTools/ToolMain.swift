import ArgumentParser
import Foundation
import Logging
import MsgFloCLI
import MsgFlo

/// A failure a tool reports to its user: one line on stderr, exit status 1.
public struct ToolFailure: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    public var description: String { message }
}

/// What a tool needs from the outside world, so that tests can run the same code on an in-memory broker.
public struct ToolEnvironment: Sendable {
    /// Makes the transport for a broker URL (the executables pass `Transports.make`).
    public typealias TransportFactory = @Sendable (BrokerURL, Logger, TransportTimeouts) throws -> any Transport
    public var makeTransport: TransportFactory
    public var environment: [String: String]

    public init(makeTransport: @escaping TransportFactory,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.makeTransport = makeTransport
        self.environment = environment
    }

    /// The environment a command runs in: set by ``ToolMain/run(_:arguments:transports:)`` (the executables pass
    /// `Transports.make`), or by a test with `ToolEnvironment.$current.withValue`.
    @TaskLocal public static var current = ToolEnvironment(makeTransport: { _, _, _ in
        preconditionFailure("ToolEnvironment.current has no transport factory: run commands through ToolMain.run")
    })
}

/// Runs a command the way every msgflo tool runs: `--help` on stdout with exit 0; a bad argument or any failure as
/// one line on stderr and exit 1 (never a usage dump, never a stack trace, never a password).
public enum ToolMain {
    public static func run<C: ParsableCommand>(
        _ type: C.Type, arguments: [String]? = nil,
        transports: @escaping ToolEnvironment.TransportFactory
    ) async -> Never {
        let environment = ToolEnvironment(makeTransport: transports)
        let status = await ToolEnvironment.$current.withValue(environment) {
            await execute(type, arguments: arguments)
        }
        flushAndExit(status)
    }

    /// Parses and runs a command; returns the exit status. Failures are printed (one line on stderr).
    public static func execute<C: ParsableCommand>(_ type: C.Type, arguments: [String]?,
                                                   errorLine: (String) -> Void = Output.error) async -> Int32 {
        let name = type.configuration.commandName ?? String(describing: type)
        do {
            var command = try type.parseAsRoot(MsgFloArguments.arguments(for: type, arguments))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as ToolFailure {
            errorLine(oneLine(name, error.message))
        } catch let error as MsgFloError {
            errorLine(oneLine(name, error.message))
        } catch {
            let status = CommandErrors.report(error, of: type, errorLine: errorLine)
            if status == 0 || error is ExitCode { return status }
        }
        return 1
    }

    /// `tool: message` on one line.
    public static func oneLine(_ tool: String, _ message: String) -> String { CommandErrors.oneLine(tool, message) }

    public static func flushAndExit(_ status: Int32) -> Never {
        fflush(nil)
        exit(status)
    }
}

/// Output that reaches the terminal at once, even when stdout is a pipe. Each call is one line: control characters
/// in the text are escaped (``SafeText``; tabs kept on stdout, where msgflo's formats have them), which leaves
/// compact JSON valid JSON; error lines are capped too.
public enum Output {
    public static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((SafeText.escape(text, limit: nil, keepingTabs: true) + "\n").utf8))
    }

    public static func error(_ text: String) {
        let line = SafeText.escape(BrokerURL.redactCredentials(in: text), limit: SafeText.lineLimit)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Log output of the libraries the tools use. Quiet unless asked: `DEBUG=msgflo*` (msgflo's switch) or
/// `MSGFLO_LOG_LEVEL=debug|info|warning|…`; `MSGFLO_LOG_FORMAT=json` (or `--log-format json`) for JSON lines. Failures reach the user as the tool's own one-line error instead.
public enum ToolLogging {
    public static func logger(_ label: String, environment: [String: String]) -> Logger {
        var level = Logger.Level.critical
        if let text = environment["MSGFLO_LOG_LEVEL"], let l = Logger.Level(rawValue: text.lowercased()) {
            level = l
        } else if let debug = environment["DEBUG"], debug.contains("msgflo") {
            level = .debug
        }
        let format = LogFormat.resolve(nil, environment: environment) ?? .text
        var logger = Logger(label: label, factory: { format.handler(label: $0) })
        logger.logLevel = level
        return logger
    }
}
