// msgflo-graph: .fbp → JSON graph, JSON graph → .fbp, checks and Graphviz output.

import ArgumentParser
import FBP
import MsgFlo
import MsgFloCLI

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum InputFormat: String, ExpressibleByArgument, CaseIterable {
    case fbp, json
}

struct ReadFailure: Error {
    let reason: String
}

/// A whole file (or standard input for "-"), read into one buffer sized from the file. (Not mapped: a mapped file
/// that another process truncates meanwhile ends the reader with SIGBUS, and bad input must never crash a tool.)
struct Input {
    let bytes: UnsafeBufferPointer<UInt8>

    init(path: String) throws(ReadFailure) {
        let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY)
        if fd < 0 { throw ReadFailure(reason: String(cString: strerror(errno))) }
        defer { if fd != 0 { close(fd) } }
        var st = stat()
        var capacity = 1 << 16
        if fstat(fd, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw ReadFailure(reason: String(cString: strerror(EISDIR))) }
            if st.st_size > 0 { capacity = Int(st.st_size) + 1 }
        }
        guard var base = malloc(capacity)?.assumingMemoryBound(to: UInt8.self) else { throw ReadFailure(reason: String(cString: strerror(ENOMEM))) }
        var count = 0
        while true {
            if count == capacity {
                capacity *= 2
                guard let grown = realloc(base, capacity) else {
                    free(base)
                    throw ReadFailure(reason: String(cString: strerror(ENOMEM)))
                }
                base = grown.assumingMemoryBound(to: UInt8.self)
            }
            let r = read(fd, base + count, capacity - count)
            if r < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                free(base)
                throw ReadFailure(reason: reason)
            }
            if r == 0 { break }
            count += r
        }
        bytes = UnsafeBufferPointer(start: base, count: count)
    }

    func release() {
        guard let base = bytes.baseAddress else { return }
        free(UnsafeMutableRawPointer(mutating: base))
    }
}

func writeOut(_ buf: UnsafeBufferPointer<UInt8>, to fd: Int32 = 1) {
    guard let base = buf.baseAddress else { return }
    var off = 0
    while off < buf.count {
        let r = write(fd, base + off, buf.count - off)
        if r < 0 { if errno == EINTR { continue }; return }
        off += r
    }
}

func writeOut(_ s: String, to fd: Int32 = 1) {
    var s = s
    s.withUTF8 { writeOut($0, to: fd) }
}

struct MsgFloGraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "msgflo-graph",
        abstract: "Read a .fbp graph and print its JSON graph, or read a JSON graph and print it as .fbp.",
        discussion: """
            FILE.fbp prints the JSON graph; FILE.json prints the graph as .fbp. "-" reads standard input \
            (JSON if it is a JSON object, else .fbp, unless --from says). Warnings go to standard error; \
            errors too, with exit status 1.
            """)

    @Argument(help: "The graph file (.fbp or .json), or - for standard input.")
    var file: String

    @Flag(name: .customLong("case-sensitive"), help: "Keep port names as written (default: lower-case them, like the reference).")
    var caseSensitive = false

    @Flag(help: "Only report errors and warnings (exit status 1 on error).")
    var check = false

    @Flag(help: "Print Graphviz DOT instead (msgflo-graph g.fbp --dot | dot -Tsvg > g.svg).")
    var dot = false

    @Flag(help: "Print the graph drawn as one self-contained SVG (no Graphviz needed): msgflo-graph g.fbp --svg > g.svg.")
    var svg = false

    @Option(help: "The input format, when the file name does not say.")
    var from: InputFormat?

    func validate() throws {
        if dot && svg { throw ValidationError("--dot and --svg: choose one") }
    }

    func run() throws {
        let display = file == "-" ? "<stdin>" : file
        let input: Input
        do {
            input = try Input(path: file)
        } catch {
            CommandErrors.writeErrorLine("msgflo-graph: cannot read \(display): \(error.reason)")
            throw ExitCode(1)
        }
        defer { input.release() }
        let bytes = input.bytes
        let format: InputFormat
        if let from {
            format = from
        } else if file.lowercased().hasSuffix(".json") {
            format = .json
        } else if file == "-", (try? JSONValue.parse(String(decoding: bytes, as: UTF8.self)))?.objectValue != nil {
            format = .json
        } else {
            format = .fbp
        }
        let name = graphName(display)
        do {
            switch format {
            case .json:
                // valid UTF-8 (invalid sequences become U+FFFD, as when node reads a file as 'utf-8')
                let graph = try Graph(jsonText: String(decoding: bytes, as: UTF8.self))
                let result = FBP.serialize(graph)
                report(result.warnings, display)
                if graph.processes.isEmpty { warnEmpty(display) }
                if check { return }
                if dot { writeOut(graph.dot(name: name)) } else if svg { writeOut(graph.svg(title: name)) } else { writeOut(result.text) }
            case .fbp:
                // The JSON text is written straight from the parser's records (FBP.read), in chunks,
                // without building the Graph: for big graphs that is most of the time and memory.
                let parsed = try FBP.withValidUTF8(bytes) { try FBP.read(utf8: $0, options: ParseOptions(caseSensitive: caseSensitive)) }
                report(parsed.warnings, display)
                if parsed.processCount == 0 { warnEmpty(display) }
                if check { return }
                if dot {
                    writeOut(parsed.graph.dot(name: name))
                } else if svg {
                    writeOut(parsed.graph.svg(title: name))
                } else {
                    parsed.writeJSON(newline: true) { writeOut($0) }
                }
            }
        } catch let e as FBPError {
            // One line that stands alone (`file:line:col: error: message`, escaped); on a terminal the source line
            // and a caret follow, escaped the same way.
            var msg = "\(display):"
            if let loc = e.location { msg += "\(loc.line):\(loc.column):" }
            msg += " error: \(e.message)"
            CommandErrors.writeErrorLine(msg)
            if isatty(2) != 0, let excerpt = CommandErrors.sourceExcerpt(e.caretDisplay) {
                writeOut(excerpt + "\n", to: 2)
            }
            throw ExitCode(1)
        }
    }

    /// One escaped line per warning.
    func report(_ warnings: [Warning], _ display: String) {
        guard !warnings.isEmpty else { return }
        var s = ""
        for w in warnings {
            let line = if let loc = w.location {
                "\(display):\(loc.line):\(loc.column): warning: \(w.message)"
            } else {
                "\(display): warning: \(w.message)"
            }
            s += SafeText.escape(line, limit: SafeText.lineLimit) + "\n"
        }
        writeOut(s, to: 2)
    }

    /// An empty graph converts to an empty graph, but is more likely a mistake (wrong file, truncated file).
    func warnEmpty(_ display: String) {
        CommandErrors.writeErrorLine("\(display): warning: the graph has no processes")
    }

    func graphName(_ display: String) -> String {
        var base = display
        if let slash = base.lastIndex(of: "/") { base = String(base[base.index(after: slash)...]) }
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { base = String(base[..<dot]) }
        return base
    }
}

// One-line errors naming the tool, as every other tool of the project prints them.
await CommandMain.run(MsgFloGraph.self)
