import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCLI

/// msgflo's command-line habits for the daemon: `msgflo --help` shows the daemon's options (it is what `msgflo`
/// runs), `--shell [SHELL]` takes an optional value as in msgflo-setup (`--shell` alone: /bin/sh), and
/// `--auto-save [true|false]` takes msgflo's boolean words (false means false here).
extension MsgFlo {
    static let habits = MsgFloArguments(booleans: ["--auto-save"], optionalValues: ["--shell": "/bin/sh"])

    /// The process's arguments, normalized; `msgflo --help` (or `-h`, `help`) prints ``rootHelp()`` and exits 0.
    static func msgfloArguments(_ given: [String] = Array(CommandLine.arguments.dropFirst())) -> [String] {
        if given.count == 1, ["--help", "-h", "help"].contains(given[0]) {
            print(rootHelp())
            fflush(nil)
            Foundation.exit(0)
        }
        return habits.normalize(given)
    }

    /// The root help with the daemon's options in place of the root's own (just `--help`).
    static func rootHelp(columns: Int? = nil) -> String {
        let root = helpMessage(columns: columns)
        let run = helpMessage(for: Run.self, columns: columns)
        guard let rootOptions = root.range(of: "OPTIONS:"), let subcommands = root.range(of: "SUBCOMMANDS:"),
              let runOptions = run.range(of: "OPTIONS:") else { return root }
        let options = run[runOptions.lowerBound...].trimmingCharacters(in: .whitespacesAndNewlines)
        return String(root[..<rootOptions.lowerBound]) + options + "\n\n" + String(root[subcommands.lowerBound...])
    }
}

/// What `msgflo status` says on stderr while it waits, so that a quiet broker is not mistaken for a hang.
enum StatusNotes {
    /// `capabilities`: the transport's; where queues hold messages (AMQP) the fbp queue has what was announced.
    static func listening(_ capabilities: TransportCapabilities, timeout: Double, listen: Double) -> String {
        let heard = !capabilities.contains(.queuesHoldMessages)
            ? "on MQTT only what is announced meanwhile is heard: participants announce every ~27 s (period 60 / 2.2), so --listen 30 hears them all"
            : "on AMQP the fbp queue holds the announcements made since the last reader"
        return "no msgflo daemon answered within \(seconds(timeout)) s; listening on fbp for \(seconds(listen)) s (\(heard))"
    }

    static func heardNothing(_ capabilities: TransportCapabilities, listen: Double) -> String {
        "no participant announced itself on fbp in \(seconds(listen)) s"
            + (!capabilities.contains(.queuesHoldMessages) && listen < 30 ? " (try --listen 30)" : "")
    }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(s) }
}

/// One line on stderr.
func note(_ text: String) {
    FileHandle.standardError.write(Data("msgflo status: \(text)\n".utf8))
}
