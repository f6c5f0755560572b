import ArgumentParser
import Logging
import MsgFlo
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failure reported to the user by its message alone: `tool: message` on one line, exit status 1.
package protocol CommandFailure: Error {
    var message: String { get }
}

extension MsgFloError: CommandFailure {}

/// The front door of every executable of the project (the daemon, the tools, the participants' command line, the
/// benchmark and chaos drivers): arguments parsed with ArgumentParser (msgflo's habits applied first, see
/// ``MsgFloArguments``), `--help` on standard output with status 0, and every failure as one line on standard error,
/// `tool: what went wrong`, with status 1 (``CommandErrors``). ``BrokerArgument`` is the broker option they share,
/// ``CommandLogging`` their loggers.
package enum CommandMain {
    /// Parses `arguments` (else the process's) and runs `type`; returns the exit status. Failures are reported
    /// through `errorLine`, one line each.
    package static func execute<C: ParsableCommand>(_ type: C.Type, arguments: [String]? = nil,
                                                   errorLine: (String) -> Void = CommandErrors.writeErrorLine) async -> Int32 {
        let name = type.configuration.commandName ?? String(describing: type)
        do {
            var command = try type.parseAsRoot(MsgFloArguments.arguments(for: type, arguments))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as any CommandFailure {
            errorLine(CommandErrors.oneLine(name, error.message))
        } catch {
            let status = CommandErrors.report(error, of: type, errorLine: errorLine)
            if status == 0 || error is ExitCode { return status }
        }
        return 1
    }

    /// Runs `type` as the process's command (``execute(_:arguments:errorLine:)``) and exits with its status.
    package static func run<C: ParsableCommand>(_ type: C.Type, arguments: [String]? = nil) async -> Never {
        exit(await execute(type, arguments: arguments))
    }

    /// Parses the options of a program written as top-level code: `--help` prints them and exits 0; a bad argument is
    /// one line naming `tool`, exit 1.
    package static func parse<A: ParsableArguments>(_ type: A.Type, tool: String, arguments: [String]? = nil) -> A {
        do {
            return try type.parse(arguments ?? Array(CommandLine.arguments.dropFirst()))
        } catch {
            if type.exitCode(for: error) == .success {
                CommandErrors.writeLine(type.fullMessage(for: error), to: 1)
                exit(0)
            }
            fail(tool, type.message(for: error))
        }
    }

    /// `tool: message` on standard error (one line, escaped, no password), exit status 1.
    package static func fail(_ tool: String, _ message: String) -> Never {
        CommandErrors.writeErrorLine(CommandErrors.oneLine(tool, message))
        exit(1)
    }

    /// Flushes standard output and error and exits.
    package static func exit(_ status: Int32) -> Never {
        fflush(nil)
        #if canImport(Glibc)
        Glibc.exit(status)
        #else
        Musl.exit(status)
        #endif
    }
}

/// `--broker URL`, as every executable takes it: else `MSGFLO_BROKER`, else `CLOUDAMQP_URL`, else `amqp://localhost`
/// (``BrokerURL/resolve(_:environment:)``).
package struct BrokerArgument: ParsableArguments, Sendable {
    @Option(name: .long, help: ArgumentHelp(
        "Broker URL: amqp://user:pass@host:port/vhost or mqtt://host:port (amqps://, mqtts:// for TLS). Default: $MSGFLO_BROKER, else $CLOUDAMQP_URL, else amqp://localhost.",
        valueName: "URL"))
    package var broker: String?

    package init() {}

    /// The broker this program talks to, or a one-line error naming the source that held a bad URL.
    package func url(environment: [String: String]) throws(MsgFloError) -> BrokerURL {
        try BrokerURL.resolve(broker, environment: environment)
    }
}

/// The loggers of every executable: escaped lines (``SafeLogHandler``) on standard error, as text or JSON lines.
package enum CommandLogging {
    /// `MSGFLO_LOG_LEVEL` (trace … critical), else `debug` when `DEBUG` names msgflo (msgflo's switch), else
    /// `fallback`.
    package static func level(_ environment: [String: String], default fallback: Logger.Level) -> Logger.Level {
        if let text = environment["MSGFLO_LOG_LEVEL"], let level = Logger.Level(rawValue: text.lowercased()) { return level }
        if let debug = environment["DEBUG"], debug.contains("msgflo") { return .debug }
        return fallback
    }

    /// A logger at `level` in `format`. Touches no process-wide state: a tool run inside a test process makes its own.
    package static func logger(_ label: String, level: Logger.Level, format: LogFormat = .text) -> Logger {
        var logger = Logger(label: label, factory: { format.handler(label: $0, level: level) })
        logger.logLevel = level
        return logger
    }

    /// For a program's main, once: makes swift-log's handler for every label the same (loggers that dependencies
    /// make for themselves write alike) and returns the program's logger.
    package static func bootstrap(_ label: String, level: Logger.Level, format: LogFormat = .text) -> Logger {
        LoggingSystem.bootstrap { format.handler(label: $0, level: level) }
        return logger(label, level: level, format: format)
    }
}
