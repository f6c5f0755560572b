import Foundation
import Logging
import MsgFlo
import MsgFloTransports
import TestSupport
import Synchronization
import Testing

/// The tools run as processes against the real brokers of `Scripts/brokers start`. Without brokers these fail.
@Suite(.serialized) struct ToolProcessTests {
    static func transport(_ kind: TestBrokers.Kind) async throws -> any Transport {
        let t = try Transports.make(try TestBrokers.url(kind), logger: testLogger())
        try await t.connect()
        return t
    }

    static func env(_ kind: TestBrokers.Kind) throws -> [String: String] {
        ["MSGFLO_BROKER": try TestBrokers.url(kind).unredacted]
    }

    // MARK: send and dump

    @Test(arguments: TestBrokers.Kind.allCases)
    func sendThenDumpAQueue(_ kind: TestBrokers.Kind) async throws {
        let queue = TestBrokers.unique("tools.IN")
        let env = try Self.env(kind)
        if kind == .amqp {
            // An inport queue that holds messages until read.
            let t = try await Self.transport(kind)
            try await t.declareInport(queue)
            let sent = try await ToolProcess.run("msgflo-send-message", ["--queue", queue, "--json", #"{"b": 2, "a": [1, "x"]}"#, "--repeat", "2"], env: env)
            #expect(sent.status == 0, "\(sent)")
            #expect(sent.stdout.isEmpty && sent.stderr.isEmpty, "\(sent)")
            let dumped = try await ToolProcess.run("msgflo-dump-message", ["--queue", queue, "--amount", "2"], env: env, timeout: .seconds(20))
            #expect(dumped.status == 0, "\(dumped)")
            #expect(dumped.stdout == #"[{"b":2,"a":[1,"x"]},{"b":2,"a":[1,"x"]}]"# + "\n")
            await t.close()
        } else {
            // A topic: the dump must be listening first; send until it has what it waits for.
            let dump = try await ToolProcess.start("msgflo-dump-message", ["--queue", queue], env: env)
            let result = try await Self.sendUntilDone(dump, queue: queue, json: #"{"b": 2, "a": [1, "x"]}"#, env: env)
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == #"{"b":2,"a":[1,"x"]}"# + "\n")
        }
    }

    /// Sends with msgflo-send-message every 300 ms until `dump` exits.
    static func sendUntilDone(_ dump: ToolProcess.Running, queue: String, json: String, env: [String: String],
                              timeout: Duration = .seconds(30)) async throws -> ToolProcess.Result {
        let deadline = ContinuousClock.now + timeout
        while dump.isRunning && ContinuousClock.now < deadline {
            let sent = try await ToolProcess.run("msgflo-send-message", ["--queue", queue, "--json", json], env: env)
            #expect(sent.status == 0, "\(sent)")
            try await Task.sleep(for: .milliseconds(300))
        }
        return await dump.wait(timeout: .seconds(5))
    }

    @Test func dumpAnAMQPOutportTapsItsExchange() async throws {
        let kind = TestBrokers.Kind.amqp
        let outport = TestBrokers.unique("tools.OUT")
        let t = try await Self.transport(kind)
        try await t.declareOutport(outport)
        let dump = try await ToolProcess.start("msgflo-dump-message", ["--queue", outport, "--follow", "--amount", "2"], env: try Self.env(kind))
        let deadline = ContinuousClock.now + .seconds(20)
        var n = 0
        while dump.isRunning && ContinuousClock.now < deadline {
            n += 1
            try await t.send(toOutport: outport, Message(text: #"{"n": \#(n)}"#))
            try await Task.sleep(for: .milliseconds(200))
        }
        let result = await dump.wait(timeout: .seconds(5))
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(result)")
        // Consecutive messages: each one the participant sent while the tap was bound.
        if lines.count == 2, let first = lines.first?.dropFirst(5).dropLast(), let k = Int(first) {
            #expect(lines == [#"{"n":\#(k)}"#, #"{"n":\#(k + 1)}"#])
        }
        await t.close()
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func sendFromStdinAndFile(_ kind: TestBrokers.Kind) async throws {
        let queue = TestBrokers.unique("tools.STDIN")
        let env = try Self.env(kind)
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("m.json")
        try Data("{\n  \"from\": \"file\"\n}\n".utf8).write(to: file)
        let t = try await Self.transport(kind)
        if kind == .amqp { try await t.declareInport(queue) }
        let sub = try await t.consume(queue)
        let a = try await ToolProcess.run("msgflo-send-message", ["--queue", queue], env: env, stdin: Data("\"from stdin\"\n".utf8))
        #expect(a.status == 0, "\(a)")
        let b = try await ToolProcess.run("msgflo-send-message", ["--queue", queue, "--file", file.path], env: env)
        #expect(b.status == 0, "\(b)")
        var got: [String] = []
        for await d in sub {
            d.ack()
            got.append(d.message.text ?? "")
            if got.count == 2 { break }
        }
        #expect(got == ["\"from stdin\"", "{\n  \"from\": \"file\"\n}"])
        await sub.cancel()
        await t.close()
    }

    // MARK: register

    @Test(arguments: TestBrokers.Kind.allCases)
    func registerSendsDiscoveryOnce(_ kind: TestBrokers.Kind) async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        component: 'my/ToggleSwitch'
        icon: 'file-word-o'
        label: 'A toggle switch which can turn things on or off'
        inports: []
        outports:
        -
          id: 'state'
          type: 'boolean'
          description: 'ff'
          queue: '/myswitch/#ROLE/status'
        """.write(to: dir.appendingPathComponent("toggleswitch.yaml"), atomically: true, encoding: .utf8)
        let role = TestBrokers.unique("switch")
        let t = try await Self.transport(kind)
        try await t.declareDiscoveryQueue()
        let sub = try await t.consume(discoveryQueue, options: ConsumeOptions(prefetch: 1000))
        // Never acknowledged: messages of other tests go back to the queue when this one stops.
        let seen = FoundDefinition()
        let reader = Task {
            for await d in sub {
                guard let def = try? Discovery.parse(d.message), def.role == role else { continue }
                seen.set(def, keys: Set(d.message.json?.objectValue?.keys.map { $0 } ?? []))
                return
            }
        }
        // On AMQP, consumers of `fbp` compete (a coordinator under test elsewhere may take the message): send again,
        // a few times at most, until this consumer has it.
        for _ in 0..<(kind == .amqp ? 5 : 1) {
            let result = try await ToolProcess.run("msgflo-register", ["--forever=false", "--role", "\(role):toggleswitch.yaml"],
                                                   env: try Self.env(kind), cwd: dir, timeout: .seconds(20))
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == "Sent discovery message for \(role)\n")
            let deadline = ContinuousClock.now + .seconds(3)
            while seen.value == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            if seen.value != nil { break }
        }
        reader.cancel()
        await sub.cancel()
        await t.close()
        let found = seen.value?.0
        #expect(seen.value?.1 == ["protocol", "command", "payload"])
        let def = try #require(found)
        #expect(def.id == role && def.component == "my/ToggleSwitch" && def.label.hasPrefix("A toggle"))
        #expect(def.outports == [PortDefinition(id: "state", type: "boolean", queue: "/myswitch/\(role)/status", description: "ff")])
        #expect(def.inports.isEmpty)
    }

    // MARK: failures: one line on stderr, exit 1, quickly, no password

    @Test func badInputIsOneLineAndExit1() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "a(Repeat) OUT -> IN b(Repeat\n".write(to: dir.appendingPathComponent("broken.fbp"), atomically: true, encoding: .utf8)
        let cases: [(String, [String], String)] = [
            ("msgflo-send-message", ["--json", "{}"], "Missing queue"),
            ("msgflo-send-message", ["--queue", "q", "--json", "{oops"], "Invalid JSON"),
            ("msgflo-send-message", ["--queue", "q", "--file", "/nonexistent/x.json"], "cannot read file"),
            ("msgflo-send-message", ["--queue", "q", "--frobnicate"], "frobnicate"),
            ("msgflo-dump-message", ["--amount", "0", "--queue", "q"], "--amount"),
            ("msgflo-register", ["--role", "r:/nonexistent/def.yaml", "--forever", "false"], "cannot read definition"),
            ("msgflo-register", ["--role", "nocolon"], "ROLE:FILE"),
            ("msgflo-register", ["--role", "r:x.yaml", "--forever", "perhaps"], "--forever"),
            ("msgflo-procfile", [], "No graph file specified"),
            ("msgflo-procfile", ["/nonexistent/g.fbp"], "cannot read graph"),
            ("msgflo-setup", [], "No graph file specified"),
            ("msgflo-setup", ["/nonexistent/g.fbp"], "cannot read graph"),
            ("msgflo-setup", [dir.appendingPathComponent("broken.fbp").path], "broken.fbp:"),
            ("msgflo-procfile", [dir.appendingPathComponent("broken.fbp").path], "broken.fbp:"),
            ("msgflo-send-message", ["--queue", "q", "--json", "1", "--broker", "ftp://u:hunter2@h/"], "unsupported scheme"),
        ]
        for (tool, args, expected) in cases {
            let r = try await ToolProcess.run(tool, args, timeout: .seconds(20))
            #expect(r.status == 1, "\(tool) \(args): \(r)")
            #expect(r.stderrLines.count == 1, "\(tool) \(args): \(r)")
            #expect(r.stderr.contains(expected), "\(tool) \(args): \(r)")
            #expect(!r.stderr.contains("hunter2"))
        }
    }

    @Test(arguments: ["amqp://user:hunter2@127.0.0.1:1/", "mqtt://user:hunter2@127.0.0.1:1"])
    func unreachableBrokerFailsFastInOneLine(_ url: String) async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "component: X\n".write(to: dir.appendingPathComponent("x.yaml"), atomically: true, encoding: .utf8)
        try "a(X) OUT -> IN b(X)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        let runs: [(String, [String])] = [
            ("msgflo-send-message", ["--queue", "q", "--json", "1"]),
            ("msgflo-dump-message", ["--queue", "q"]),
            ("msgflo-register", ["--role", "x:x.yaml", "--forever", "false"]),
            ("msgflo-setup", ["g.fbp"]),
        ]
        for (tool, args) in runs {
            let r = try await ToolProcess.run(tool, args + ["--broker", url, "--connect-timeout", "3"], cwd: dir, timeout: .seconds(20))
            #expect(r.status == 1, "\(tool): \(r)")
            #expect(r.stderrLines.count == 1, "\(tool): \(r)")
            #expect(r.stderr.contains("127.0.0.1"), "\(tool): \(r)")
            #expect(!r.stderr.contains("hunter2"), "\(tool): \(r)")
            #expect(r.elapsed < .seconds(8), "\(tool) took \(r.elapsed)")
        }
    }

    /// A broker that takes the TCP connection and then says nothing (a listening socket nobody serves): the tools
    /// give up after --connect-timeout with one line, never hang.
    @Test(arguments: ["amqp", "mqtt"])
    func silentBrokerTimesOutInOneLine(_ scheme: String) async throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        #expect(bound == 0)
        #expect(listen(fd, 16) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let url = "\(scheme)://127.0.0.1:\(port)" + (scheme == "amqp" ? "/" : "")
        let r = try await ToolProcess.run("msgflo-send-message", ["--queue", "q", "--json", "1", "--broker", url,
                                                                  "--connect-timeout", "2"], timeout: .seconds(20))
        #expect(r.status == 1, "\(r)")
        #expect(r.stderrLines.count == 1, "\(r)")
        #expect(r.stderr.contains("127.0.0.1:\(port)"), "\(r)")
        #expect(r.elapsed < .seconds(6), "took \(r.elapsed)")
    }

    @Test func helpReadsWell() async throws {
        for tool in ["msgflo-setup", "msgflo-send-message", "msgflo-dump-message", "msgflo-register", "msgflo-procfile"] {
            let r = try await ToolProcess.run(tool, ["--help"])
            #expect(r.status == 0, "\(tool): \(r)")
            #expect(r.stdout.contains("USAGE: \(tool)"), "\(tool): \(r)")
            #expect(r.stdout.contains("--broker") || tool == "msgflo-procfile", "\(tool): \(r)")
            #expect(r.stderr.isEmpty)
        }
    }

    // MARK: procfile (no broker)

    @Test func procfileIsByteExact() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try """

        # !runtime msgflo
        imgflo_api(imgflo-server/HttpApi) NEWJOB -> IN imgflo_jobs(msgflo/RoundRobin) OUT -> JOB imgflo_worker(imgflo-server/ProcessImage)
        imgflo_worker JOBRESULT -> JOBRESULT imgflo_api
        imgflo_jobs DEADLETTER -> IN drop(Drop)

        'ignored' -> IIP imgflo_api

        """.write(to: dir.appendingPathComponent("imgflo-server.fbp"), atomically: true, encoding: .utf8)
        try #"{"components": {"imgflo-server/ProcessImage": "node worker.js --name #ROLE"}}"#
            .write(to: dir.appendingPathComponent("library-imgflo.json"), atomically: true, encoding: .utf8)
        try """
        # !runtime msgflo

        web(api/Web) FAST -> IN fast(api/Worker)
        web SLOW -> IN slow(api/Worker)

        # includes IIPs for per-role settings
        '8081' -> PORT slow, '8082' -> PORT fast

        """.write(to: dir.appendingPathComponent("iips.fbp"), atomically: true, encoding: .utf8)
        try """
        {"msgflo": {"variables": {"PREFETCH": "--prefetch 1",
          "NOFLO": "node ./node_modules/.bin/noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --cache true --iips #IIPS",
          "DEAD": "--deadletter in"},
          "components": {"api/Web": "node web.js", "api/Worker": "#NOFLO #PREFETCH"}}}
        """.write(to: dir.appendingPathComponent("library-noflo.json"), atomically: true, encoding: .utf8)
        try "{}".write(to: dir.appendingPathComponent("package.json"), atomically: true, encoding: .utf8)

        let a = try await ToolProcess.run("msgflo-procfile", ["imgflo-server.fbp", "--components", "participants",
            "--library", "library-imgflo.json", "--ignore=imgflo_jobs", "--ignore=imgflo_api", "--ignore", "drop",
            "--include", "web: node index.js"], cwd: dir)
        #expect(a.status == 0, "\(a)")
        #expect(a.stdout == "imgflo_worker: node worker.js --name imgflo_worker\nweb: node index.js\n")

        let b = try await ToolProcess.run("msgflo-procfile", ["iips.fbp", "--library", "library-noflo.json", "--ignore", "web",
            "--include", "web: node index.js"], cwd: dir)
        #expect(b.status == 0, "\(b)")
        #expect(b.stdout == """
            fast: node ./node_modules/.bin/noflo-runtime-msgflo --name fast --graph api/Worker --cache true --iips '{"port":"8082"}' --prefetch 1
            slow: node ./node_modules/.bin/noflo-runtime-msgflo --name slow --graph api/Worker --cache true --iips '{"port":"8081"}' --prefetch 1
            web: node index.js

            """)

        let c = try await ToolProcess.run("msgflo-procfile", ["imgflo-server.fbp", "--components", "participants",
            "--ignore=imgflo_jobs", "--ignore=imgflo_api", "--ignore", "drop", "--include", "web: node index.js"], cwd: dir)
        #expect(c.status == 1, "\(c)")
        #expect(c.stderrLines.count == 1, "\(c)")
        #expect(c.stderr.contains("No component imgflo-server/ProcessImage defined for role imgflo_worker"), "\(c)")
        #expect(c.stdout.isEmpty)
    }

    // MARK: setup

    @Test func setupStaticOnAMQPPrintsAndMakesTheBindings() async throws {
        let kind = TestBrokers.Kind.amqp
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = TestBrokers.unique("src").replacingOccurrences(of: "-", with: "_")
        let b = TestBrokers.unique("tgt").replacingOccurrences(of: "-", with: "_")
        try "\(a)(Foreign) OUT -> IN \(b)(Foreign)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        let r = try await ToolProcess.run("msgflo-setup", ["g.fbp"], env: try Self.env(kind), cwd: dir, timeout: .seconds(30))
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == "Set up participants []\nSet up bindings:\n PUBSUB: \t \(a).OUT -> \(b).IN\n")
        // The binding carries data: publish on a's outport, read b's inport queue.
        let t = try await Self.transport(kind)
        let sub = try await t.consume("\(b).IN")
        try await t.send(toOutport: "\(a).OUT", Message(text: #"{"via":"binding"}"#))
        for await d in sub {
            d.ack()
            #expect(d.message.text == #"{"via":"binding"}"#)
            break
        }
        await sub.cancel()
        await t.close()
    }

    @Test func setupOnMQTTSendsConnectinportToParticipantsThatTakeIt() async throws {
        let kind = TestBrokers.Kind.mqtt
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = TestBrokers.unique("src").replacingOccurrences(of: "-", with: "_")
        let b = TestBrokers.unique("tgt").replacingOccurrences(of: "-", with: "_")
        try "\(a)(Foreign) OUT -> IN \(b)(Foreign)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        let t = try await Self.transport(kind)
        let control = "\(b)/control"
        let commands = try await t.consume(control)
        let announcer = Task {
            while !Task.isCancelled {
                try await t.announce(ParticipantDefinition(id: "\(b)-1", role: b, component: "Foreign",
                    inports: [PortDefinition(id: "in", queue: "\(b).IN")], inqueue: control,
                    capabilities: ["connectinport", "disconnectinport"]))
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let r = try await ToolProcess.run("msgflo-setup", ["g.fbp", "--timeout", "10"], env: try Self.env(kind), cwd: dir, timeout: .seconds(30))
        announcer.cancel()
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == "Set up participants []\nSet up bindings:\n PUBSUB: \t \(a).OUT -> \(b).IN\n")
        let watchdog = Task { try await Task.sleep(for: .seconds(5)); await commands.cancel() }
        var got: CoordinatorCommand?
        for await d in commands {
            got = try? CoordinatorCommand(parsing: d.message)
            break
        }
        watchdog.cancel()
        #expect(got?.command == .connectInport && got?.port == "in" && got?.queue == "\(a).OUT")

        // The same graph when nobody takes connectinport and there is no --forever: one plain line, exit 1.
        let c = TestBrokers.unique("mute").replacingOccurrences(of: "-", with: "_")
        try "\(a)(Foreign) OUT -> IN \(c)(Foreign)\n".write(to: dir.appendingPathComponent("h.fbp"), atomically: true, encoding: .utf8)
        let n = try await ToolProcess.run("msgflo-setup", ["h.fbp", "--timeout", "1"], env: try Self.env(kind), cwd: dir, timeout: .seconds(30))
        #expect(n.status == 1, "\(n)")
        #expect(n.stderrLines.count == 2 && n.stderr.contains("not connected: \(a).OUT -> \(c).IN") && n.stderr.contains("--forever"), "\(n)")
        await commands.cancel()
        await t.close()
    }

    /// `--participants` with foreign participants (msgflo-register as the command): ready on discovery, and with
    /// `--forever` stopped on SIGTERM.
    @Test(arguments: TestBrokers.Kind.allCases)
    func setupParticipantsForeverStopsThemOnSIGTERM(_ kind: TestBrokers.Kind) async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = TestBrokers.unique("fa").replacingOccurrences(of: "-", with: "_")
        let b = TestBrokers.unique("fb").replacingOccurrences(of: "-", with: "_")
        try "\(a)(ForeignA) OUT -> IN \(b)(ForeignB)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        try "component: Foreign\ninports: {in: {}}\noutports: {out: {}}\n".write(to: dir.appendingPathComponent("foreign.yaml"), atomically: true, encoding: .utf8)
        try Self.foreignLibrary.write(to: dir.appendingPathComponent("library.json"), atomically: true, encoding: .utf8)
        var env = try Self.env(kind)
        env["PATH"] = try ToolProcess.binDir().path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let args = ["g.fbp", "--participants", "--library", "library.json", "--forever", "--timeout", "20"]
            + (kind == .mqtt ? [] : [])
        let setup = try await ToolProcess.start("msgflo-setup", args, env: env, cwd: dir)
        let ready = await setup.waitForOutput("--forever enabled, keeping alive", timeout: .seconds(40))
        #expect(ready, "stdout: \(setup.stdout) stderr: \(setup.stderr)")
        if kind == .amqp {
            #expect(setup.stdout == "Set up participants [ '\(a)', '\(b)' ]\nSet up bindings:\n PUBSUB: \t \(a).OUT -> \(b).IN\n--forever enabled, keeping alive\n")
        } else {
            // msgflo-register's participants do not take connectinport: --forever routes the edge.
            #expect(setup.stdout.hasPrefix("Set up participants [ '\(a)', '\(b)' ]\nSet up bindings:\n PUBSUB: \t \(a).OUT -> \(b).IN\n"), "\(setup.stdout)")
        }
        let children = Self.childPIDs(of: setup.process.processIdentifier)
        #expect(children.count == 2, "children: \(children)")
        setup.signal(SIGTERM)
        let r = await setup.wait(timeout: .seconds(15))
        #expect(r.status == 0, "\(r)")
        for pid in children { #expect(kill(pid, 0) != 0, "participant \(pid) still running") }
    }

    /// `--participants --discover`: the queues the participants announce, not the naming convention; the binding
    /// is made although nothing declared those queues yet (msgflo-register declares nothing).
    @Test func setupDiscoverBindsAnnouncedQueues() async throws {
        let kind = TestBrokers.Kind.amqp
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = TestBrokers.unique("da").replacingOccurrences(of: "-", with: "_")
        let b = TestBrokers.unique("db").replacingOccurrences(of: "-", with: "_")
        try "\(a)(ForeignA) OUT -> IN \(b)(ForeignB)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        try """
        component: Foreign
        inports:
          - {id: in, queue: 'custom.#ROLE.input'}
        outports:
          - {id: out, queue: 'custom.#ROLE.output'}
        """.write(to: dir.appendingPathComponent("foreign.yaml"), atomically: true, encoding: .utf8)
        try Self.foreignLibrary.write(to: dir.appendingPathComponent("library.json"), atomically: true, encoding: .utf8)
        var env = try Self.env(kind)
        env["PATH"] = try ToolProcess.binDir().path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let setup = try await ToolProcess.start("msgflo-setup", ["g.fbp", "--participants", "--library", "library.json",
                                                          "--discover", "--timeout", "20", "--forever"], env: env, cwd: dir)
        defer { setup.signal(SIGTERM) }
        let ready = await setup.waitForOutput("--forever enabled, keeping alive", timeout: .seconds(30))
        #expect(ready, "stdout: \(setup.stdout) stderr: \(setup.stderr)")
        #expect(setup.stdout == "Set up participants [ '\(a)', '\(b)' ]\nSet up bindings:\n PUBSUB: \t custom.\(a).output -> custom.\(b).input\n--forever enabled, keeping alive\n")
        let t = try await Self.transport(kind)
        let sub = try await t.consume("custom.\(b).input")
        try await t.send(toOutport: "custom.\(a).output", Message(text: "42"))
        for await d in sub {
            d.ack()
            #expect(d.message.text == "42")
            break
        }
        await sub.cancel()
        await t.close()
    }

    /// Foreign participants (msgflo-register) announcing every 2/2.2 and 3/2.2 s: often, and never in lockstep. On
    /// AMQP the consumers of `fbp` compete (a coordinator under test elsewhere takes some announcements, and with
    /// strict round robin two participants announcing in lockstep could each always land on the same consumer).
    static let foreignLibrary = #"""
        {"components": {"ForeignA": "msgflo-register --role #ROLE:foreign.yaml --interval 2",
                        "ForeignB": "msgflo-register --role #ROLE:foreign.yaml --interval 3"}}
        """#

    static func childPIDs(of parent: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent && !fields[0].hasPrefix("Z")
        }
    }

    // MARK: msgflo's README flow, end to end, with the SDK's participants

    @Test(arguments: TestBrokers.Kind.allCases)
    func readmeFlowEndToEnd(_ kind: TestBrokers.Kind) async throws {
        let root = TestBrokers.packageRoot
        let bin = try ToolProcess.binDir().path
        var env = try Self.env(kind)
        env["PATH"] = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        // participants/library.json with its commands pointed at this build's msgflo-participant (the file itself
        // names the release build, which Scripts/demo makes).
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let original = try String(contentsOf: root.appendingPathComponent("participants/library.json"), encoding: .utf8)
        let library = dir.appendingPathComponent("library.json")
        // Announcing every ~1 s and ~1.4 s: often, and never in lockstep (see foreignLibrary).
        try original.replacingOccurrences(of: "../.build/release/msgflo-participant", with: bin + "/msgflo-participant")
            .replacingOccurrences(of: "Repeat #ROLE", with: "Repeat #ROLE --discovery-period 2.2")
            .replacingOccurrences(of: "Uppercase #ROLE", with: "Uppercase #ROLE --discovery-period 3")
            .write(to: library, atomically: true, encoding: .utf8)
        // The demo graph's roles are fixed (repeat, shout): one broker kind at a time (the suite is serialized).
        let setup = try await ToolProcess.start("msgflo-setup", ["graphs/demo.fbp", "--participants", "--library",
            library.path, "--forever", "--timeout", "60"], env: env, cwd: root)
        defer { setup.signal(SIGTERM) }
        let ready = await setup.waitForOutput("--forever enabled, keeping alive", timeout: .seconds(90))
        try #require(ready, "stdout: \(setup.stdout) stderr: \(setup.stderr)")
        #expect(setup.stdout == "Set up participants [ 'repeat', 'shout' ]\nSet up bindings:\n PUBSUB: \t repeat.OUT -> shout.IN\n--forever enabled, keeping alive\n")

        let dump = try await ToolProcess.start("msgflo-dump-message", ["--queue", "shout.OUT"], env: env, cwd: root)
        let result = try await Self.sendUntilDone(dump, queue: "repeat.IN", json: #""hello, msgflo""#, env: env, timeout: .seconds(30))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == #""HELLO, MSGFLO""# + "\n", "\(result)")

        let children = Self.childPIDs(of: setup.process.processIdentifier)
        #expect(children.count == 2, "children: \(children)")
        setup.signal(SIGTERM)
        let stopped = await setup.wait(timeout: .seconds(15))
        #expect(stopped.status == 0, "\(stopped)")
        for pid in children { #expect(kill(pid, 0) != 0, "participant \(pid) still running") }
    }
}

final class FoundDefinition: Sendable {
    private let state = Mutex<(ParticipantDefinition, Set<String>)?>(nil)
    func set(_ d: ParticipantDefinition, keys: Set<String>) { state.withLock { $0 = (d, keys) } }
    var value: (ParticipantDefinition, Set<String>)? { state.withLock { $0 } }
}
