import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCoordinator
import MsgFloCLI
import Synchronization

/// A comma-separated list option that may also be repeated: `--ignore a,b --ignore c`.
func commaList(_ values: [String]) -> [String] {
    values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
}

package struct SetupCommand: AsyncParsableCommand, MsgFloStyleCommand {
    /// msgflo's `--participants [BOOL]`, `--discover [BOOL]`, `--forever [BOOL]`, `--shell [shell]`, `--forward [stderr,stdout]`.
    package static let msgfloArguments = MsgFloArguments(
        booleans: ["--participants", "--discover", "--forever"],
        optionalValues: ["--shell": "/bin/sh", "--forward": "stderr,stdout"])

    package static let configuration = CommandConfiguration(
        commandName: "msgflo-setup",
        abstract: "Connect the queues of a graph's participants, optionally starting them first.",
        discussion: """
        Static mode (the default) binds each edge by msgflo's queue naming convention, role.PORT (port upper-cased). \
        --discover instead waits for every participant's discovery message and uses the queues it announces. \
        --participants first starts the graph's participants with the commands of the component library; each \
        counts as ready when its discovery message arrives.

        AMQP: an edge is a broker binding and outlives this program. MQTT: an edge is given to the target \
        participant with connectinport when its discovery message says it takes that command, so it outlives this \
        program too; any other edge needs this program to route it, which only --forever does (without it you are \
        told which edges are not connected).

        Without --forever, participants it started keep running after it exits. With --forever it stays, and on \
        SIGTERM or SIGINT stops the participants it started and exits 0.

        Example: msgflo-setup graphs/demo.fbp --participants --library participants/library.json --forever
        """)

    @Argument(help: ArgumentHelp("The graph, as .fbp or .json.", valueName: "graph.fbp"))
    package var graph: String?

    @OptionGroup package var brokerOptions: BrokerOptions

    @Flag(help: "Also start the participants, with the commands of the component library. (msgflo's --participants true|false works too.)")
    package var participants = false

    @Option(help: ArgumentHelp("Start only these roles (comma-separated).", valueName: "a,b"))
    package var only: [String] = []

    @Option(help: ArgumentHelp("Do not start these roles (comma-separated, or repeated).", valueName: "a,b"))
    package var ignore: [String] = []

    @Option(help: ArgumentHelp("The component library: a JSON file, its msgflo key or the whole file.", valueName: "FILE.json"))
    package var library: String = "package.json"

    @Option(help: ArgumentHelp("Where component files are found.", valueName: "DIR"))
    package var componentdir: String = "participants"

    @Option(help: ArgumentHelp("Pass the participants' stdout and/or stderr through (--forward alone: both).", valueName: "stderr,stdout"))
    package var forward: String = ""

    @Flag(help: "Wait for discovery messages and bind the queues they announce, instead of the naming convention. (Also --discover true|false.)")
    package var discover = false

    @Option(help: ArgumentHelp("How long to wait for discovery messages.", valueName: "SECONDS"))
    package var timeout: Double = 30

    @Flag(help: "Keep running (routing MQTT edges that need it); stop the started participants on SIGTERM. (Also --forever true|false.)")
    package var forever = false

    @Option(help: ArgumentHelp("Run each participant command as SHELL -c COMMAND (--shell alone: /bin/sh).", valueName: "SHELL"))
    package var shell: String?

    package init() {}

    package func validate() throws {
        guard let graph, !graph.isEmpty else { throw ValidationError("No graph file specified") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
        for stream in commaList([forward]) where stream != "stdout" && stream != "stderr" {
            throw ValidationError("--forward takes stdout and/or stderr, not '\(stream)'")
        }
    }

    package func run() async throws {
        let env = ToolEnvironment.current
        let loadedGraph = try GraphFile.load(graph!, warn: Output.error, requireProcesses: true)
        var options = Setup.Options()
        options.participants = participants
        options.only = only.isEmpty ? nil : commaList(only)
        options.ignore = commaList(ignore)
        options.forward = Set(commaList([forward]))
        options.discover = discover
        options.timeout = .seconds(double: timeout)
        options.forever = forever
        options.shell = shell
        let lib: (any CommandLibrary)? = participants ? try LibraryFile.load(library, componentdir: componentdir) : nil
        let setup = Setup(graph: loadedGraph, options: options, library: lib, environment: env.environment)
        if participants { _ = try setup.commands() }  // a component missing from the library fails before anything starts

        try await brokerOptions.withConnection(tool: Self.configuration.commandName!) { transport in
            let processes = ParticipantProcesses()
            let keepingAlive = AtomicFlag()
            let trap = SignalTrap { _ in
                // From a synchronous signal handler, and it ends the process: fire and forget.
                Task {
                    await processes.terminateAll()
                    await transport.close()
                    CommandMain.exit(keepingAlive.value ? 0 : 1)
                }
            }
            do {
                _ = try await setup.run(on: transport, processes: processes)
            } catch {
                await processes.terminateAll()
                throw error
            }
            guard forever else {
                trap.cancel()
                return
            }
            keepingAlive.set()
            Output.line("--forever enabled, keeping alive")
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
    }
}

package struct ProcfileCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-procfile",
        abstract: "Print a Procfile (Heroku, foreman) that starts a graph's participants.",
        discussion: """
        One line per graph process, ROLE: COMMAND, the command taken from the component library with #ROLE and \
        #IIPS expanded, then the --include lines as given.

        Example: msgflo-procfile graphs/demo.fbp --library participants/library.json --include 'web: node index.js'
        """)

    @Argument(help: ArgumentHelp("The graph, as .fbp or .json.", valueName: "graph.fbp"))
    package var graph: String?

    @Option(help: ArgumentHelp("The component library: a JSON file, its msgflo key or the whole file.", valueName: "FILE.json"))
    package var library: String = "package.json"

    @Option(help: ArgumentHelp("Leave out this process. Repeat for several.", valueName: "NODE"))
    package var ignore: [String] = []

    @Option(help: ArgumentHelp("Add this line as it is. Repeat for several.", valueName: "DATA"))
    package var include: [String] = []

    @Option(name: [.customLong("components"), .customLong("componentdir")],
            help: ArgumentHelp("Where component files are found (also --componentdir, as msgflo-setup and msgflo name it).", valueName: "DIR"))
    package var components: String = "participants"

    @Option(help: ArgumentHelp("Ignored: a Procfile names no broker (the participants read $MSGFLO_BROKER). Accepted as every msgflo tool takes it.", valueName: "URL"))
    package var broker: String?

    package init() {}

    package func validate() throws {
        guard let graph, !graph.isEmpty else { throw ValidationError("No graph file specified") }
    }

    package func run() async throws {
        if broker != nil { Output.error("msgflo-procfile: note: --broker is ignored (the participants read $MSGFLO_BROKER)") }
        let loadedGraph = try GraphFile.load(graph!, warn: Output.error, requireProcesses: true)
        let lib = try LibraryFile.load(library, componentdir: components)
        for line in try Procfile.lines(loadedGraph, library: lib, ignore: ignore, include: include) {
            Output.line(line)
        }
    }
}

final class AtomicFlag: Sendable {
    private let state = Mutex(false)
    var value: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}
