/// msgflo's option habits, turned into what ArgumentParser takes before it parses.
///
/// msgflo (commander 2.x) declares some options `--name [BOOL]` and `--name [VALUE]`: the value is optional.
/// ArgumentParser has flags (no value) and options (a value), so a command lists those names and the command line is
/// rewritten first:
/// - a boolean, `--forever`, `--forever true`, `--forever=yes` → `--forever`; `--forever false`, `--forever=0` → nothing
///   (msgflo turned any value, "false" too, into true; here false means false);
/// - an option with an optional value, `--shell` alone (at the end or before another option) → `--shell=DEFAULT`.
/// Arguments after `--` are left alone.
package struct MsgFloArguments: Sendable {
    package var booleans: Set<String>
    /// Option name (`--shell`) → the value a bare occurrence stands for (`/bin/sh`).
    package var optionalValues: [String: String]

    package init(booleans: Set<String> = [], optionalValues: [String: String] = [:]) {
        self.booleans = booleans
        self.optionalValues = optionalValues
    }

    /// `true`/`false` for msgflo's boolean words, nil for anything else.
    package static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "1", "on": true
        case "false", "no", "0", "off": false
        default: nil
        }
    }

    package func normalize(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--" {
                out.append(contentsOf: arguments[(i - 1)...])
                break
            }
            let name = arg.split(separator: "=", maxSplits: 1).first.map(String.init) ?? arg
            if booleans.contains(name) {
                if name != arg {
                    // --name=VALUE: a word we know, or left for the parser to reject.
                    let value = String(arg.dropFirst(name.count + 1))
                    guard let b = Self.boolean(value) else { out.append(arg); continue }
                    if b { out.append(name) }
                } else if i < arguments.count, let b = Self.boolean(arguments[i]) {
                    i += 1
                    if b { out.append(name) }
                } else {
                    out.append(name)
                }
            } else if name == arg, let bare = optionalValues[name],
                      i == arguments.count || arguments[i].hasPrefix("-") {
                out.append("\(name)=\(bare)")
            } else {
                out.append(arg)
            }
        }
        return out
    }
}

/// A command that takes msgflo's optional-value options (see ``MsgFloArguments``).
package protocol MsgFloStyleCommand {
    static var msgfloArguments: MsgFloArguments { get }
}

extension MsgFloArguments {
    /// The arguments `type` parses: `given` (else the process's), normalized when `type` is a ``MsgFloStyleCommand``.
    package static func arguments(for type: Any.Type, _ given: [String]?) -> [String]? {
        guard let style = type as? any MsgFloStyleCommand.Type else { return given }
        return style.msgfloArguments.normalize(given ?? Array(CommandLine.arguments.dropFirst()))
    }
}
