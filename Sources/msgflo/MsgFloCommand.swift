import ArgumentParser
import Foundation
import Logging
import MsgFlo
import MsgFloCLI
import MsgFloCoordinator
import MsgFloObserve
import MsgFloTransports

/// A one-line error: printed as `msgflo: <line>` on stderr, exit 1.
struct Failure: CommandFailure, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

@main
struct MsgFlo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "msgflo",
        abstract: "The MsgFlo coordinator: keeps the broker wired to a graph, whatever the participants do.",
        discussion: """
        `msgflo` (or `msgflo run`) runs the daemon: it listens for participants on the fbp queue, starts the graph's \
        participants that the component library knows, binds every edge as soon as both ends have appeared, sends \
        IIPs to each new process of a role, and notices participants that go silent. `msgflo status` shows the network.
        """,
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self)

    /// Through the project's front door: errors are one line that names the tool (`msgflo: …`), as the other tools
    /// print them; help and version output are left as they are.
    static func main() async {
        await CommandMain.run(self, arguments: msgfloArguments())
    }
}

extension BrokerArgument {
    func resolve() throws -> BrokerURL { try url(environment: ProcessInfo.processInfo.environment) }
}

extension MsgFlo {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the coordinator daemon (the default).")

        @OptionGroup var brokerOption: BrokerArgument
        @Option(help: "Graph to keep wired: a .fbp or .json file. Nodes without a participant yet are pending.")
        var graph: String?
        @Option(help: "Component library: a JSON file, its 'msgflo' key or the whole file.")
        var library: String = "package.json"
        @Option(help: "Directory of component files run with the library's handlers.")
        var componentdir: String = "participants"
        @Option(help: "A role not to start (repeatable; a comma-separated list works too).")
        var ignore: [String] = []
        @Option(help: "Which child streams to forward, prefixed with the role.")
        var forward: String = "stderr,stdout"
        @Option(help: ArgumentHelp("Run participant commands as SHELL -c COMMAND instead of splitting them into words (--shell alone: /bin/sh).", valueName: "SHELL"))
        var shell: String?
        @Option(help: "Seconds of silence before a participant that declares no heartbeat is lost.")
        var participantTimeout: Double = 600
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: String = "info"
        @Option(help: "Log lines as text or json (one JSON object per line). Default: $MSGFLO_LOG_FORMAT, else text.")
        var logFormat: String?
        @Flag(help: "One of several coordinators of this network (on one host or several): they elect one active instance through the broker; the others wait and take over within seconds when it dies (AMQP: an exclusive queue; MQTT: retained claims with a last will). Only the active one wires and starts participants.")
        var standby = false

        @OptionGroup(title: "Live runtime (Flowhub)") var runtimeArguments: RuntimeArguments

        func validate() throws {
            guard participantTimeout > 0 else { throw ValidationError("--participant-timeout must be positive") }
            guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
            guard LogFormat.resolve(logFormat, environment: ProcessInfo.processInfo.environment) != nil else {
                throw ValidationError("unknown log format '\(logFormat ?? "$MSGFLO_LOG_FORMAT")' (text or json)")
            }
        }

        func run() async throws {
            // Escaped and capped: the daemon logs names that participants chose (SafeLogHandler, under both formats).
            let logger = CommandLogging.bootstrap("msgflo", level: Logger.Level(rawValue: logLevel) ?? .info,
                                                  format: LogFormat.resolve(logFormat, environment: ProcessInfo.processInfo.environment) ?? .text)
            let url = try brokerOption.resolve()
            var config = DaemonConfiguration(broker: url)
            config.graphPath = graph
            config.libraryPath = library
            config.libraryGiven = CommandLine.arguments.contains { $0 == "--library" || $0.hasPrefix("--library=") }
            config.componentDirectory = componentdir
            config.options.ignore = Set(ignore.flatMap { $0.split(separator: ",").map(String.init) })
            let streams = Set(forward.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            config.options.forwardStdout = streams.contains("stdout")
            config.options.forwardStderr = streams.contains("stderr")
            config.options.shell = shell
            config.options.participantTimeout = participantTimeout
            config.options.standby = standby
            // The URL's options are checked (making the transport) before anything is logged: a bad one is the
            // only line printed.
            let transport: any Transport
            do { transport = try Transports.make(url, logger: logger) } catch { throw Failure("\(error)") }
            let loaded: (DesiredGraph, CoordinatorOptions)
            do { loaded = try config.load(logger: logger) } catch { throw Failure(error.message) }
            let desired = loaded.0
            var options = loaded.1
            // Metrics are kept when the runtime server runs (it serves /metrics).
            let observability = runtimeArguments.wanted ? Observability() : nil
            options.metrics = observability?.factory
            let coordinator = Coordinator(transport: transport, graph: desired, options: options, logger: logger)
            logger.debug("msgflo starting on \(url)")
            try await runtimeArguments.run(CoordinatorService(coordinator: coordinator, logger: logger), config: config,
                                           logger: logger, observability: observability)
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the network: roles, participants, liveness, pending edges, queue depths.",
            discussion: "Asks a running daemon over the broker; when none answers, listens on fbp for --listen seconds.")

        @OptionGroup var brokerOption: BrokerArgument
        @Option(help: "Seconds to wait for the daemon's answer.")
        var timeout: Double = 3
        @Option(help: "Seconds to listen on fbp when no daemon answers.")
        var listen: Double = 5
        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            // Errors only, on stderr (stdout holds the table), escaped like every log line.
            let logger = CommandLogging.logger("msgflo-status", level: .error)
            let url = try brokerOption.resolve()
            let transport: any Transport
            do { transport = try Transports.make(url, logger: logger) } catch { throw Failure("\(error)") }
            var connected = false
            let s: NetworkStatus
            do {
                s = try await transport.withConnection {
                    connected = true
                    if let status = try await StatusClient.ask(transport, timeout: .milliseconds(Int(timeout * 1000))) {
                        return status
                    }
                    note(StatusNotes.listening(transport.capabilities, timeout: timeout, listen: listen))
                    let status = try await StatusClient.listen(transport, for: .milliseconds(Int(listen * 1000)))
                    if status.rows.isEmpty { note(StatusNotes.heardNothing(transport.capabilities, listen: listen)) }
                    return status
                }
            } catch where !connected {
                throw Failure("cannot connect to \(url): \(error)")
            }
            print(json ? s.json.serialized : s.table())
        }
    }
}

