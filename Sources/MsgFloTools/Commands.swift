import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCLI

/// Options every tool that talks to a broker has: the `--broker` of every executable (``BrokerArgument``), and how
/// long to try.
package struct BrokerOptions: ParsableArguments, Sendable {
    @OptionGroup package var broker: BrokerArgument

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp(
        "Give up connecting to the broker after this many seconds.", valueName: "SECONDS"))
    package var connectTimeout: Double = 10

    @Option(name: .customLong("log-format"), help: ArgumentHelp(
        "Log lines (MSGFLO_LOG_LEVEL) as text or json. Default: $MSGFLO_LOG_FORMAT, else text.", valueName: "FORMAT"))
    package var logFormat: String?

    package init() {}

    package func validate() throws {
        guard connectTimeout > 0, connectTimeout.isFinite else {
            throw ValidationError("--connect-timeout must be a positive number of seconds")
        }
        if let logFormat, LogFormat(rawValue: logFormat.lowercased()) == nil {
            throw ValidationError("unknown --log-format '\(logFormat)' (text or json)")
        }
    }

    package func url(_ environment: ToolEnvironment = .current) throws -> BrokerURL {
        try BrokerConnection.resolve(broker.broker, environment: environment.environment)
    }

    package func connect(tool: String, environment: ToolEnvironment = .current) async throws -> any Transport {
        var environment = environment
        if let logFormat { environment.environment["MSGFLO_LOG_FORMAT"] = logFormat }
        return try await BrokerConnection.connect(try url(environment), timeout: .seconds(double: connectTimeout),
                                           tool: tool, environment: environment)
    }

    /// Connects (within `--connect-timeout`), runs `body` with the transport, and closes it whatever happens.
    package func withConnection<R>(tool: String, environment: ToolEnvironment = .current,
                                   isolation: isolated (any Actor)? = #isolation,
                                   _ body: (any Transport) async throws -> R) async throws -> R {
        var environment = environment
        if let logFormat { environment.environment["MSGFLO_LOG_FORMAT"] = logFormat }
        return try await BrokerConnection.withConnection(try url(environment), timeout: .seconds(double: connectTimeout),
                                                         tool: tool, environment: environment, body)
    }
}

/// A boolean option that takes a value, so that `--forever false` means false (msgflo's commander turns any value,
/// "false" included, into true). A bare flag is not accepted: say `--forever true`.
package struct BoolValue: ExpressibleByArgument, Sendable, Equatable {
    package var value: Bool
    package init(_ value: Bool) { self.value = value }
    package init?(argument: String) {
        switch argument.lowercased() {
        case "true", "yes", "1", "on": value = true
        case "false", "no", "0", "off": value = false
        default: return nil
        }
    }
    package var defaultValueDescription: String { value ? "true" : "false" }
    package static var allValueStrings: [String] { ["true", "false"] }
}

package struct SendMessageCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-send-message",
        abstract: "Send a JSON message into a queue (AMQP) or topic (MQTT).",
        discussion: """
        The data is given with --json, read from --file, or read from standard input when neither is given. It must \
        be JSON and is sent as written. On AMQP it goes straight into queue Q (default exchange, routing key Q); on \
        MQTT it is published on topic Q.

        Example: msgflo-send-message --queue repeat.IN --json '{"hello": "world"}'
        """)

    @OptionGroup package var brokerOptions: BrokerOptions

    @Option(help: ArgumentHelp("The queue (AMQP) or topic (MQTT) to send to.", valueName: "Q"))
    package var queue: String?

    @Option(help: ArgumentHelp("The message, as JSON text.", valueName: "DATA"))
    package var json: String?

    @Option(help: ArgumentHelp("Read the message from this file.", valueName: "PATH"))
    package var file: String?

    @Option(help: ArgumentHelp("Send the message this many times.", valueName: "N"))
    package var `repeat`: Int = 1

    package init() {}

    package func validate() throws {
        guard let queue, !queue.isEmpty else { throw ValidationError("Missing queue to send to (--queue)") }
        if json != nil && file != nil { throw ValidationError("give the message with --json or --file, not both") }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be 1 or more") }
    }

    package func run() async throws {
        let source = try SendMessage.Source.given(json: json, file: file, what: "message")
        let message = try SendMessage.payload(from: source)
        try WireName.check(queue!, WireName.Broker(try brokerOptions.url()), what: "--queue")
        try await brokerOptions.withConnection(tool: Self.configuration.commandName!) { transport in
            try await SendMessage.send(message, to: queue!, count: `repeat`, over: transport)
        }
    }
}

package struct DumpMessageCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-dump-message",
        abstract: "Print the messages arriving on a queue (AMQP) or topic (MQTT) as JSON.",
        discussion: """
        Waits for --amount messages, then prints the one message, or a JSON array of them all, and exits. With \
        --follow it prints each message on its own line as it arrives, until --amount are shown or it is stopped.

        On AMQP an inport queue (one that exists as a queue) is consumed: its messages are taken, and acknowledged. \
        A name with no queue is an outport (a fanout exchange): a temporary queue is bound to it, so what the \
        participant sends from then on is shown without taking it from anyone. On MQTT the topic is subscribed.

        Example: msgflo-dump-message --queue uppercase.OUT --amount 2
        """)

    @OptionGroup package var brokerOptions: BrokerOptions

    @Option(help: ArgumentHelp("The queue, outport or topic to read.", valueName: "Q"))
    package var queue: String?

    @Option(help: ArgumentHelp("How many messages to read (default 1; with --follow, no limit).", valueName: "N"))
    package var amount: Int?

    @Flag(help: "Print each message as it arrives, one per line, and keep reading.")
    package var follow = false

    @Flag(help: "On AMQP, when Q is neither a queue nor an exchange, declare it as an outport exchange and wait for messages (without it, that is an error).")
    package var create = false

    package init() {}

    package func validate() throws {
        guard let queue, !queue.isEmpty else { throw ValidationError("Missing queue to read from (--queue)") }
        if let amount, amount < 1 { throw ValidationError("--amount must be 1 or more") }
    }

    package func run() async throws {
        try WireName.check(queue!, WireName.Broker(try brokerOptions.url()), use: .filter, what: "--queue")
        try await brokerOptions.withConnection(tool: Self.configuration.commandName!) { transport in
            let (subscription, _) = try await DumpMessage.open(queue!, on: transport, create: create)
            try await DumpMessage.run(subscription, amount: follow ? amount : (amount ?? 1), follow: follow,
                                      print: Output.line)
            await subscription.cancel()
        }
    }
}

package struct RegisterCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-register",
        abstract: "Send discovery messages for participants that cannot announce themselves.",
        discussion: """
        Each --role ROLE:FILE.yaml names a YAML definition: component (required), label, icon, id (default: the \
        role), and inports/outports, either as a map {name: {queue, type, description}} or as a list of \
        {id, queue, type, description}. #ROLE in a queue name is replaced by the role; a port without a queue gets \
        ROLE.PORT. The messages are sent again every --interval/2.2 seconds while --forever is true.

        Example: msgflo-register --role switch1:toggleswitch.yaml --forever false
        """)

    @OptionGroup package var brokerOptions: BrokerOptions

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "A role and the YAML file that defines it. Repeat for several roles.", valueName: "ROLE:FILE.yaml"))
    package var role: [String] = []

    @Option(help: ArgumentHelp("The announcement period; messages are sent every SECONDS/2.2.", valueName: "SECONDS"))
    package var interval: Double = 60

    @Option(help: ArgumentHelp("Keep running and announcing (true), or announce once and exit (false).",
                               valueName: "true|false"))
    package var forever: BoolValue = BoolValue(true)

    package init() {}

    package func validate() throws {
        if role.isEmpty { throw ValidationError("Missing role definition (--role ROLE:FILE.yaml)") }
        guard interval > 0, interval.isFinite else { throw ValidationError("--interval must be a positive number of seconds") }
    }

    package func run() async throws {
        let files = try role.map(Register.RoleFile.init(parsing:))
        let definitions = try files.map { try Register.definition($0, heartbeat: forever.value ? interval : nil) }
        let wire = WireName.Broker(try brokerOptions.url())
        for d in definitions { try d.checkWireNames(wire) }
        try await brokerOptions.withConnection(tool: Self.configuration.commandName!) { transport in
            try await Register.announce(definitions, over: transport, print: Output.line)
            guard forever.value else { return }
            let period = Duration.seconds(double: interval / 2.2)
            while true {
                try await Task.sleep(for: period)
                do {
                    for definition in definitions { try await transport.announce(definition) }
                } catch {
                    Output.error("Warning: Failed to send discovery message: \(error)")
                }
            }
        }
    }
}
