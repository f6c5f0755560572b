import ArgumentParser
import Logging
import MsgFlo
import MsgFloCLI
import MsgFloParticipant
import MsgFloTransports
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The command line every participant gets for free, fitting msgflo's component templates
/// (`msgflo-participant Repeat #ROLE`, `my-participant --name #ROLE`):
///
/// ```swift
/// // Sources/my-participant/main.swift
/// await ParticipantMain.run(myParticipant)
/// ```
///
/// Arguments: the role as `--role`, `--name` or the first positional argument; `--broker` (else `MSGFLO_BROKER`,
/// `CLOUDAMQP_URL`, `amqp://localhost`); `--iips '{"port": data}'`; `--prefetch`; `--discovery-period` (else
/// `MSGFLO_DISCOVERY_PERIOD`, else 60); `--queue port=QUEUE`; `--help`. When ready it prints exactly one line on
/// stdout, `<role>(<component>) connected to <broker URL, password hidden>`, and nothing on stderr before it.
/// SIGTERM/SIGINT stop it gracefully (exit 0). Bad arguments: one line on stderr, exit 1. A broker that is not up
/// yet is waited for (a line on stderr per attempt; `--connect-timeout SECONDS` gives up with exit 1); refused
/// credentials, an unknown vhost or a failed TLS verification: one line, exit 1.
/// Logs go to stderr at `MSGFLO_LOG_LEVEL` (default `warning`; `DEBUG=msgflo*`: `debug`), as every executable logs
/// (`CommandLogging`).
public enum ParticipantMain {
    /// Runs `participant` with the arguments of the process.
    public static func run(_ participant: Participant, arguments: [String]? = nil) async -> Never {
        let args = arguments ?? Array(CommandLine.arguments.dropFirst())
        let program = programName()
        await runParsed(participant, args, usage: "\(program) ROLE [options]", program: program)
    }

    /// Runs one of several participants: the first argument names the component (`msgflo-participant Repeat ROLE`).
    public static func run(library: [String: Participant], arguments: [String]? = nil) async -> Never {
        var args = arguments ?? Array(CommandLine.arguments.dropFirst())
        let program = programName()
        let names = library.keys.sorted().joined(separator: ", ")
        guard let first = args.first, !first.hasPrefix("-") else {
            if args.contains("--help") || args.contains("-h") {
                Self.out("USAGE: \(program) COMPONENT ROLE [options]\n\nCOMPONENTS: \(names)\n\n"
                         + optionsHelp())
                CommandMain.exit(0)
            }
            fail(program, "missing component name (one of \(names))")
        }
        guard let participant = library[first] else { fail(program, "no component '\(first)' (one of \(names))") }
        args.removeFirst()
        await runParsed(participant, args, usage: "\(program) \(first) ROLE [options]", program: program)
    }

    static func runParsed(_ participant: Participant, _ args: [String], usage: String, program: String) async -> Never {
        let parsed: ParticipantArguments
        do {
            parsed = try ParticipantArguments.parse(args)
        } catch {
            if ParticipantArguments.exitCode(for: error) == .success {
                Self.out("USAGE: \(usage)\n\n\(participant.component): \(participant.label)\n\n"
                         + optionsHelp())
                CommandMain.exit(0)
            }
            fail(program, ParticipantArguments.message(for: error))
        }
        let environment = environmentDictionary()
        let setup: Setup
        do {
            setup = try parsed.setup(environment: environment)
        } catch {
            fail(program, "\(error)")
        }
        do {
            try checkWireNames(participant, setup)
        } catch {
            fail(program, "\(error)")
        }
        // Escaped and capped (SafeLogHandler): messages and IIPs from the broker end up in log lines.
        let logger = CommandLogging.bootstrap("msgflo.participant", level: CommandLogging.level(environment, default: .warning),
                                              format: setup.logFormat)
        let role = setup.role
        let component = participant.component
        do {
            try await withConnectionWaiting(setup, logger: logger, program: program) { transport in
                let broker = transport.broker
                let service = ParticipantService(
                    transport: transport, entries: [.init(participant, role: role, options: setup.options)], logger: logger,
                    onReady: { _ in Self.out(SafeText.escape("\(role)(\(component)) connected to \(broker)", limit: nil)) })
                let quiet = CommandLogging.logger("msgflo.participant.lifecycle", level: .critical)
                let group = ServiceGroup(configuration: ServiceGroupConfiguration(
                    services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet))
                try await group.run()
            }
        } catch {
            fail(program, "\(role)(\(component)): \(error)")
        }
        CommandMain.exit(0)
    }

    /// The queues the participant will use (`ROLE.PORT`, or `--queue port=QUEUE`), checked in bytes for the broker
    /// before anything connects: a too long role is a one-line error, not a refused declaration later.
    static func checkWireNames(_ participant: Participant, _ setup: Setup) throws(MsgFloError) {
        let wire = WireName.Broker(setup.broker)
        for (kind, ports) in [("inport", participant.inports), ("outport", participant.outports)] {
            for p in ports {
                guard let q = setup.options.queues[p.id] ?? (p.hidden ? nil : p.definition(role: setup.role).queue)
                else { continue }
                try WireName.check(q, wire, use: kind == "inport" ? .filter : .name, what: "\(kind) '\(p.id)' queue")
            }
        }
    }

    struct Setup {
        var role: String
        var broker: BrokerURL
        var options: ParticipantOptions
        var logFormat: LogFormat = .text
        /// `--connect-timeout`: give up waiting for the broker after this long (nil: wait as long as it takes).
        var connectTimeout: Duration? = nil
    }

    /// Connects, waiting for a broker that is not up yet (boot order, a deploy during a broker restart), and runs
    /// `body` on the connected transport (`Transport.withConnection`: closed whatever happens, a failed attempt's
    /// included). Tries again with backoff (0.5 s doubling to 10 s), one line on stderr per failed attempt, until
    /// `--connect-timeout`. A failure that waiting cannot cure (credentials, vhost, TLS verification) ends it at
    /// once: one line, exit 1. `body`'s error is this call's.
    static func withConnectionWaiting(_ setup: Setup, logger: Logger, program: String,
                                      _ body: (any Transport) async throws -> Void) async throws {
        let start = ContinuousClock.now
        var delay = Duration.milliseconds(500)
        var attempt = 0
        func message(_ error: any Error) -> String {
            let text = "\(error)"
            return text.contains("\(setup.broker)") ? text : "cannot connect to \(setup.broker): \(text)"
        }
        while true {
            attempt += 1
            let transport: any Transport
            do {
                transport = try Transports.make(setup.broker, logger: logger)
            } catch {
                fail(program, message(error))
            }
            var connected = false
            do {
                try await transport.withConnection {
                    connected = true
                    try await body(transport)
                }
                return
            } catch where connected {
                throw error
            } catch let error as MsgFloError where error.isConfigurationError && error.code != .wrongProtocol {
                fail(program, message(error))
            } catch {
                let waited = ContinuousClock.now - start
                if let limit = setup.connectTimeout, waited + delay > limit {
                    fail(program, "gave up after \(attempt) attempt(s) in \(Int(waited.inSeconds.rounded())) s (--connect-timeout): \(message(error))")
                }
                let line = "\(program): waiting for the broker (attempt \(attempt)): \(message(error)); next try in \(delay.inSeconds) s\n"
                _ = line.withCString { write(2, $0, strlen($0)) }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }

    /// One line on stdout, flushed.
    static func out(_ text: String) {
        print(text)
        fflush(nil)
    }

    /// One line on stderr (the message's first), exit 1.
    static func fail(_ program: String, _ message: String) -> Never {
        let line = message.split(whereSeparator: \.isNewline).first.map(String.init) ?? message
        CommandMain.fail(program, line.hasPrefix("Error: ") ? String(line.dropFirst(7)) : line)
    }

    /// The options part of the generated help (its own usage line names the arguments type, not the program).
    static func optionsHelp() -> String {
        let text = ParticipantArguments.helpMessage(columns: 100)
        guard let start = text.range(of: "ARGUMENTS:") ?? text.range(of: "OPTIONS:") else { return text }
        return String(text[start.lowerBound...])
    }

    static func programName() -> String {
        let path = CommandLine.arguments.first ?? "msgflo-participant"
        return path.split(separator: "/").last.map(String.init) ?? path
    }

    static func environmentDictionary() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}

struct ParticipantArguments: ParsableArguments {
    @Argument(help: "The role: the participant's name in the graph (also --role or --name).")
    var positionalRole: String?

    @Option(help: "The role (same as the positional argument).")
    var role: String?

    @Option(help: "The role, as msgflo-nodejs names it.")
    var name: String?

    @OptionGroup var broker: BrokerArgument

    @Option(help: ArgumentHelp("Initial information packets, delivered at start: a JSON object {\"port\": data}.", valueName: "json"))
    var iips: String?

    @Option(help: "Messages in hand at once per inport (and handlers running at once). Default: 2.")
    var prefetch: Int?

    @Option(name: .customLong("discovery-period"),
            help: "Seconds between heartbeats x 2.2 (announcements go out every period/2.2 s). Default: MSGFLO_DISCOVERY_PERIOD, else 60.")
    var discoveryPeriod: Double?

    @Option(name: .customLong("queue"), help: ArgumentHelp("An explicit queue or topic for a port (repeatable).", valueName: "port=queue"))
    var queues: [String] = []

    @Flag(help: "MQTT: share each inport's messages with the other processes of this role (a worker pool, MQTT shared subscriptions; also MSGFLO_POOL=NAME). AMQP queues are shared anyway.")
    var pool = false

    @Option(help: "The discovery id (default: ROLE-<random>).")
    var id: String?

    @Option(name: .customLong("metrics-port"),
            help: "Serve Prometheus /metrics, /healthz and /readyz on this port (0: any free port). Default: none.")
    var metricsPort: Int?

    @Option(name: .customLong("log-format"), help: "Log lines as text or json. Default: MSGFLO_LOG_FORMAT, else text.")
    var logFormat: String?

    @Option(name: .customLong("connect-timeout"),
            help: ArgumentHelp("Give up (exit 1) when the broker cannot be reached for this long at start. Default: wait as long as it takes.", valueName: "SECONDS"))
    var connectTimeout: Double?

    func setup(environment: [String: String]) throws -> ParticipantMain.Setup {
        let given = [positionalRole, role, name].compactMap { $0 }
        guard let theRole = given.first else {
            throw MsgFloError(.invalidArgument, "missing role: give it as the first argument, --role or --name")
        }
        guard !theRole.isEmpty, Set(given).count == 1 else {
            throw MsgFloError(.invalidArgument, "the role is given twice, differently: \(given.joined(separator: ", "))")
        }
        let broker = try broker.url(environment: environment)
        var options = ParticipantOptions()
        if let prefetch {
            guard prefetch >= 1 else { throw MsgFloError(.invalidArgument, "--prefetch must be at least 1") }
            options.prefetch = prefetch
        }
        if let discoveryPeriod {
            guard discoveryPeriod > 0, discoveryPeriod.isFinite else {
                throw MsgFloError(.invalidArgument, "--discovery-period must be a positive number of seconds")
            }
            options.discoveryPeriod = discoveryPeriod
        } else {
            options.discoveryPeriod = ParticipantOptions.discoveryPeriod(environment: environment)
        }
        if let iips {
            let value: JSONValue
            do { value = try JSONValue(parsing: iips) } catch {
                throw MsgFloError(.invalidArgument, "--iips is not JSON: \(error)")
            }
            guard case .object(let o) = value else {
                throw MsgFloError(.invalidArgument, "--iips must be a JSON object {\"port\": data}, got \(value.kindName)")
            }
            options.iips = o
        }
        for q in queues {
            guard let eq = q.firstIndex(of: "="), eq != q.startIndex, q.index(after: eq) != q.endIndex else {
                throw MsgFloError(.invalidArgument, "--queue takes port=queue, got '\(q)'")
            }
            options.queues[String(q[..<eq])] = String(q[q.index(after: eq)...])
        }
        options.id = id
        if let metricsPort {
            guard (0...65535).contains(metricsPort) else { throw MsgFloError(.invalidArgument, "--metrics-port must be 0...65535") }
            options.metricsPort = metricsPort
        }
        guard let format = LogFormat.resolve(logFormat, environment: environment) else {
            throw MsgFloError(.invalidArgument, "unknown log format '\(logFormat ?? environment["MSGFLO_LOG_FORMAT"] ?? "")' (text or json)")
        }
        if pool {
            options.pool = theRole
        } else if let name = environment["MSGFLO_POOL"], !name.isEmpty {
            options.pool = name
        }
        if let name = options.pool { try WorkerPool.check(name) }
        var timeout: Duration? = nil
        if let connectTimeout {
            guard connectTimeout > 0, connectTimeout.isFinite else {
                throw MsgFloError(.invalidArgument, "--connect-timeout must be a positive number of seconds")
            }
            timeout = .milliseconds(Int64((connectTimeout * 1000).rounded()))
        }
        return ParticipantMain.Setup(role: theRole, broker: broker, options: options, logFormat: format, connectTimeout: timeout)
    }
}
