import ArgumentParser
import Foundation
import MsgFlo

/// `msgflo-register-foreign [--role ROLE] definition.yaml`: msgflo's deprecated single-role form of
/// `msgflo-register`. The role comes from `--role`, else from the file's `role`; `--forever` defaults to false.
package struct RegisterForeignCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "msgflo-register-foreign",
        abstract: "Deprecated: use msgflo-register --role ROLE:FILE.yaml (which takes several roles).",
        discussion: """
        Sends the discovery message of one participant described in a YAML file, as msgflo-register does. The role \
        is --role, else the file's own 'role' key.

        Example: msgflo-register-foreign --role switch1 toggleswitch.yaml
        """)

    @Argument(help: ArgumentHelp("The participant's YAML definition.", valueName: "definition.yaml"))
    package var definition: String?

    @OptionGroup package var brokerOptions: BrokerOptions

    @Option(help: ArgumentHelp("The role (default: the file's 'role').", valueName: "ROLE"))
    package var role: String?

    @Option(help: ArgumentHelp("The announcement period; messages are sent every SECONDS/2.2.", valueName: "SECONDS"))
    package var interval: Double = 60

    @Option(help: ArgumentHelp("Keep running and announcing (true), or announce once and exit (false).",
                               valueName: "true|false"))
    package var forever: BoolValue = BoolValue(false)

    package init() {}

    package func validate() throws {
        guard let definition, !definition.isEmpty else { throw ValidationError("No definition file specified") }
        guard interval > 0, interval.isFinite else { throw ValidationError("--interval must be a positive number of seconds") }
    }

    package func run() async throws {
        Output.error("DEPRECATED: Instead use msgflo-register --role A:./filename.yaml - which also supports multiple roles")
        let path = definition!
        let text = try FileAccess.read(path, what: "definition")
        let theRole = try role.flatMap { $0.isEmpty ? nil : $0 } ?? Register.role(yaml: text, path: path)
        var register = RegisterCommand()
        register.brokerOptions = brokerOptions
        register.role = ["\(theRole):\(path)"]
        register.interval = interval
        register.forever = forever
        try await register.run()
    }
}
