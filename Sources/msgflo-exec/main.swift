// msgflo-exec ROLE [--inport in] [--outport out] [--timeout SECONDS] [--lines] [--no-reply] [participant options]
//             -- PROGRAM ARGS...
// Any program as a participant: see ExecParticipant. Everything before `--` that is not an option of its own goes
// to the participant's command line (--broker, --prefetch, --queue port=Q, ...).
import Foundation
import MsgFlo
import MsgFloCLI
import MsgFloExec
import MsgFloParticipantMain

func fail(_ text: String) -> Never { CommandMain.fail("msgflo-exec", text) }

let usage = "USAGE: msgflo-exec ROLE [--inport in] [--outport out] [--timeout SECONDS] [--lines] [--no-reply] "
    + "[--broker URL] [--prefetch N] ... -- PROGRAM [ARGS...]"
let args = Array(CommandLine.arguments.dropFirst())
if args.contains("--help") || args.contains("-h"), !args.contains("--") || args.firstIndex(of: "--")! > (args.firstIndex(of: "--help") ?? args.firstIndex(of: "-h")!) {
    print(usage)
    print("""

    Runs PROGRAM (no shell; arguments as given) for each message: the message on its standard input, its \
    properties in its environment (MSGFLO_CORRELATION_ID, MSGFLO_REPLY_TO, MSGFLO_HEADERS, MSGFLO_PROPERTIES, ...). \
    Its standard output goes out on the outport and, when the message has a reply-to, back to the caller. A \
    non-zero exit or a timeout (default 60 s) sends an error on the error port and dead-letters the message. \
    --lines keeps one process that answers each request line with one line.
    """)
    CommandMain.exit(0)
}
func parse(_ all: [String]) -> (ExecOptions, [String]) {
    guard let dash = all.firstIndex(of: "--") else { fail("missing '-- PROGRAM [ARGS...]'") }
    let command = Array(all[(dash + 1)...])
    let args = Array(all[..<dash])
    guard let program = command.first, !program.isEmpty else { fail("missing PROGRAM after '--'") }
    // Checked before connecting: a missing program would otherwise fail each message, one error at a time.
    if ProgramSearch.locate(program, path: ProcessInfo.processInfo.environment["PATH"]) == nil {
        let shown = SafeText.escape(program, limit: 200)
        fail(program.contains("/") ? "PROGRAM '\(shown)' is not an executable file"
             : "PROGRAM '\(shown)' not found on PATH (or not executable)")
    }
    var options = ExecOptions(program: program, arguments: Array(command.dropFirst()))
    var rest: [String] = []
    var i = 0
    func value(_ name: String) -> String {
        i += 1
        guard i < args.count else { fail("\(name) needs a value") }
        return args[i]
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--inport": options.inport = value(a)
        case "--outport": options.outport = value(a)
        case "--timeout":
            let v = value(a)
            guard let s = Double(v), s > 0, s <= 86_400 else { fail("--timeout must be a positive number of seconds, not '\(v)'") }
            options.timeout = .milliseconds(Int64(s * 1000))
        case "--lines": options.lines = true
        case "--no-reply": options.reply = false
        default: rest.append(a)
        }
        i += 1
    }
    for (name, port) in [("--inport", options.inport), ("--outport", options.outport)] {
        guard !port.isEmpty, port.utf8.count <= 100, port.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            fail("\(name) '\(port)' is not a port name (letters, digits, _ and -)")
        }
    }
    if options.outport == "error" { fail("--outport cannot be 'error' (the error port)") }
    return (options, rest)
}

let (options, rest) = parse(args)
await ParticipantMain.run(ExecParticipant.make(options), arguments: rest)
