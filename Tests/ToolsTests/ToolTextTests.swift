import Foundation
import Testing

/// Issue 10, items 3, 4, 5 and 11, as a user meets them: what the executables print when input is hostile or
/// wrong. None of these needs a broker: every case fails before connecting. Serialized: they start some 200 short
/// processes, which need not all start at once beside the rest of the suite.
@Suite(.serialized) struct ToolTextTests {
    /// Every executable that takes a broker, with arguments that get it as far as resolving the broker URL.
    static func brokerCommands(_ dir: URL) -> [(String, [String])] {
        [
            ("msgflo", ["--graph", dir.appendingPathComponent("g.fbp").path]),
            ("msgflo", ["status", "--timeout", "1", "--listen", "1"]),
            ("msgflo-setup", [dir.appendingPathComponent("g.fbp").path]),
            ("msgflo-send-message", ["--queue", "q", "--json", "1"]),
            ("msgflo-dump-message", ["--queue", "q"]),
            ("msgflo-register", ["--role", "x:" + dir.appendingPathComponent("x.yaml").path, "--forever", "false"]),
            ("msgflo-participant", ["Repeat", "r"]),
        ]
    }

    static func files() throws -> URL {
        let dir = try ToolProcess.tempDir()
        try "a(Repeat) OUT -> IN b(Repeat)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        try "component: X\n".write(to: dir.appendingPathComponent("x.yaml"), atomically: true, encoding: .utf8)
        return dir
    }

    static func expectOneLine(_ r: ToolProcess.Result, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1, "\(what): \(r)", sourceLocation: sourceLocation)
        #expect(r.stderrLines.count == 1, "\(what): \(r)", sourceLocation: sourceLocation)
        #expect(!r.stderr.utf8.contains(0x1B), "\(what): \(r)", sourceLocation: sourceLocation)
    }

    /// A password holding an unencoded `/ ? # @` made the parse error print the raw URL, in all seven commands.
    @Test(arguments: ["amqp://user:hunter2/x@127.0.0.1:1/", "amqp://user:hunter2?x@127.0.0.1/",
                      "mqtt://user:hunter2#x@127.0.0.1:1", "amqp://user:5672/hunter2@127.0.0.1/"])
    func unparseableURLNeverPrintsThePassword(_ url: String) async throws {
        let dir = try Self.files()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (tool, args) in Self.brokerCommands(dir) {
            for (how, extra, env) in [("--broker", ["--broker", url], [:]), ("MSGFLO_BROKER", [], ["MSGFLO_BROKER": url])] {
                let r = try await ToolProcess.run(tool, args + extra, env: env, cwd: dir, timeout: .seconds(20))
                Self.expectOneLine(r, "\(tool) \(how)")
                #expect(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"), "\(tool) \(how): \(r)")
                #expect(r.stderr.contains("***@"), "\(tool) \(how): \(r)")
                #expect(r.stderr.contains(how), "\(tool) names where the URL came from: \(r)")
            }
        }
    }

    /// A URL where none is expected is quoted back by ArgumentParser ("Unexpected argument '…'"): its user-info is
    /// hidden too, as in every error line.
    @Test func aURLQuotedInAnyErrorHidesItsUserInfo() async throws {
        let dir = try Self.files()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "amqp://user:hunter2/x@127.0.0.1:1/"
        for tool in ["msgflo-procfile", "msgflo-graph", "msgflo-setup"] {
            let r = try await ToolProcess.run(tool, ["g.fbp", url], cwd: dir, timeout: .seconds(20))
            Self.expectOneLine(r, tool)
            #expect(!r.stderr.contains("hunter2"), "\(tool): \(r)")
            #expect(r.stderr.contains("amqp://***@127.0.0.1:1/"), "\(tool): \(r)")
        }
    }

    /// `--broker ""` fell back to MSGFLO_BROKER, then amqp://localhost: a typo sent traffic to a live broker.
    @Test func emptyBrokerIsAnErrorNeverAFallback() async throws {
        let dir = try Self.files()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The fallback would be this unreachable broker: an error about it would mean the empty value was skipped.
        let fallback = "amqp://127.0.0.1:1/"
        for (tool, args) in Self.brokerCommands(dir) {
            let cases: [(String, [String], [String: String])] = [
                ("--broker is empty", ["--broker", ""], ["MSGFLO_BROKER": fallback]),
                ("Missing value for '--broker", ["--broker="], [:]),
                ("MSGFLO_BROKER is empty", [], ["MSGFLO_BROKER": "", "CLOUDAMQP_URL": fallback]),
                ("MSGFLO_BROKER: invalid broker URL", [], ["MSGFLO_BROKER": "localhost:5672"]),
            ]
            for (expected, extra, env) in cases {
                let r = try await ToolProcess.run(tool, args + extra, env: env, cwd: dir, timeout: .seconds(20))
                Self.expectOneLine(r, "\(tool) \(extra) \(env)")
                #expect(r.stderr.contains(expected), "\(tool) \(extra) \(env): \(r)")
                #expect(!r.stderr.contains("127.0.0.1:1"), "\(tool) fell back: \(r)")
            }
        }
    }

    /// msgflo-graph errors were 3 lines, up to 7 with binary input, and echoed ESC from the file.
    @Test func graphErrorsAreOneEscapedLine() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases: [(String, [UInt8], String)] = [
            ("esc.fbp", Array("a(A) OUT -> IN b(B\u{1B}[2J\u{1B}]0;pwned\u{7})\n".utf8), "esc.fbp:1:"),
            ("newline-name.fbp", Array("a(A) OUT -> IN b(B\n) FORGED\n".utf8), "newline-name.fbp:"),
            ("binary.fbp", [0x61, 0x28, 0x41, 0x29, 0x20, 0x0B, 0x0C, 0x1B, 0xFF, 0xFE, 0x0D, 0x0A, 0x85, 0x00, 0x9B, 0x32, 0x4A], "binary.fbp:"),
            ("bad.json", Array("{\"processes\": {\"a\u{1B}[31m\": 7}}".utf8), "bad.json"),
        ]
        for (name, bytes, expected) in cases {
            let file = dir.appendingPathComponent(name)
            try Data(bytes).write(to: file)
            for args in [[file.path], [file.path, "--check"], [file.path, "--dot"]] {
                let r = try await ToolProcess.run("msgflo-graph", args, timeout: .seconds(20))
                Self.expectOneLine(r, name)
                #expect(r.stderr.hasPrefix(file.path.hasPrefix("/") ? file.path : expected) || r.stderr.contains(expected),
                        "\(name): \(r)")
                #expect(r.stdout.isEmpty, "\(name): \(r)")
                for b in r.stderr.utf8 where b < 0x20 { #expect(b == 0x0A, "\(name): raw byte \(b) in \(r)") }
            }
        }
        // A broken stdin: the first line stands alone as `<stdin>:line:col: error: …`.
        let r = try await ToolProcess.run("msgflo-graph", ["-", "--from", "fbp"], stdin: Data("a(A) -> \u{1B}\n".utf8), timeout: .seconds(20))
        Self.expectOneLine(r, "stdin")
        #expect(r.stderr.hasPrefix("<stdin>:1:"), "\(r)")
    }

    /// An empty .fbp was accepted silently by msgflo-setup and msgflo-procfile: an error there (nothing to set up or
    /// list), a warning from msgflo-graph (an empty graph converts to an empty graph).
    @Test func emptyGraphIsAnErrorForSetupAndProcfileAWarningForGraph() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, text) in [("empty.fbp", ""), ("comments.fbp", "# nothing here\n\n"), ("empty.json", "{}")] {
            let file = dir.appendingPathComponent(name).path
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            for tool in ["msgflo-setup", "msgflo-procfile"] {
                let r = try await ToolProcess.run(tool, [file], env: ["MSGFLO_BROKER": "amqp://127.0.0.1:1/"], timeout: .seconds(20))
                Self.expectOneLine(r, "\(tool) \(name)")
                #expect(r.stderr.contains("\(name): the graph has no processes"), "\(tool) \(name): \(r)")
            }
            let g = try await ToolProcess.run("msgflo-graph", [file, "--check"], timeout: .seconds(20))
            #expect(g.status == 0, "\(name): \(g)")
            #expect(g.stderrLines == ["\(file): warning: the graph has no processes"], "\(name): \(g)")
        }
    }

    /// Every failure of every executable exits 1, never ArgumentParser's 64, in one line.
    @Test func usageErrorsExit1InOneLine() async throws {
        let cases: [(String, [String])] = [
            ("msgflo-graph", []),
            ("msgflo-graph", ["--bogus"]),
            ("msgflo-graph", ["g.fbp", "--from", "xml"]),
            ("msgflo", ["--bogus"]),
            ("msgflo", ["run", "--participant-timeout", "0"]),
            ("msgflo", ["status", "--timeout", "soon"]),
            ("msgflo-participant", ["Repeat", "r", "--bogus"]),
            ("msgflo-participant", []),
            ("msgflo-setup", ["g.fbp", "--bogus"]),
            ("msgflo-send-message", ["--queue", "q", "--repeat", "many"]),
            ("msgflo-dump-message", ["--queue", "q", "--amount", "-1"]),
            ("msgflo-register", []),
            ("msgflo-procfile", ["--bogus"]),
        ]
        for (tool, args) in cases {
            let r = try await ToolProcess.run(tool, args, timeout: .seconds(20))
            Self.expectOneLine(r, "\(tool) \(args)")
            #expect(r.stderr.hasPrefix(tool + ": "), "\(tool) \(args): \(r)")
        }
    }

    /// The daemon printed two lines for a bad URL option.
    @Test func daemonBadURLOptionIsOneLine() async throws {
        for url in ["amqp://127.0.0.1:1/?heartbeat=often", "mqtt://127.0.0.1:1?qos=7", "amqp://127.0.0.1:1/?persistent=maybe"] {
            let r = try await ToolProcess.run("msgflo", ["--broker", url], timeout: .seconds(20))
            Self.expectOneLine(r, url)
            #expect(r.stderr.hasPrefix("msgflo: "), "\(url): \(r)")
        }
    }

    /// Names in a tool's error are escaped: a queue name with ESC and newlines cannot forge output.
    @Test func toolErrorsEscapeWhatTheyQuote() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let evil = "x\u{1B}[2J\nFORGED all good\r"
        let r1 = try await ToolProcess.run("msgflo-register", ["--role", evil], timeout: .seconds(20))
        Self.expectOneLine(r1, "register")
        #expect(r1.stderr.contains(#"x\u001b[2J"#), "\(r1)")
        let big = String(repeating: "q", count: 100_000)
        let r2 = try await ToolProcess.run("msgflo-send-message", ["--queue", "q", "--file", "/nonexistent/" + big], timeout: .seconds(20))
        Self.expectOneLine(r2, "long name")
        #expect(r2.stderr.utf8.count <= 4097, "\(r2.stderr.utf8.count) bytes")
        #expect(r2.stderr.contains("bytes more)"), "\(r2.stderr.suffix(80))")
    }

    /// msgflo-latency parsed its arguments by hand: a bad one printed a usage line on stdout with status 2, or was
    /// taken for a default. Now one line on stderr naming what is wrong, status 1, never a password.
    @Test func msgfloLatencyBadArgumentsAreOneLine() async throws {
        let cases: [([String], String)] = [
            ([], "Missing expected argument '<broker>'"),
            (["mqtt://127.0.0.1:1", "out"], "expected BROKER OUTQUEUE INQUEUE"),
            (["mqtt://127.0.0.1:1", "out", "in", "many"], "N must be a positive whole number"),
            (["mqtt://127.0.0.1:1", "out", "in", "10", "0"], "RATE must be a positive number"),
            (["mqtt://127.0.0.1:1", "out", "in", "10", "-5"], "Unknown option '-5'"),
            (["--host", "mqtt://127.0.0.1:1", "9", "1"], "--host: FIRST and LAST"),
            (["--raw-relay", "mqtt://127.0.0.1:1", "in"], "--raw-relay takes BROKER IN OUT"),
            (["--raw-relay", "--host", "mqtt://127.0.0.1:1", "1", "2"], "exclude each other"),
            (["amqp://user:hunter2/x@127.0.0.1:1/", "out", "in"], "invalid broker URL"),
            (["amqp://user:hunter2@127.0.0.1:1/", "out", "in"], "msgflo-latency: "),
        ]
        for (args, expected) in cases {
            let r = try await ToolProcess.run("msgflo-latency", args, timeout: .seconds(30))
            Self.expectOneLine(r, "msgflo-latency \(args)")
            #expect(r.stderr.hasPrefix("msgflo-latency: "), "\(args): \(r)")
            #expect(r.stderr.contains(expected), "\(args): \(r)")
            #expect(!r.stderr.contains("hunter2"), "\(args): \(r)")
            #expect(r.stdout.isEmpty, "\(args): \(r)")
        }
    }
}
