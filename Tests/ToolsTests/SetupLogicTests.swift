import Foundation
import MsgFlo
import MsgFloCoordinator
@testable import MsgFloTools
import Testing

/// Graph → bindings → printout, msgflo's setup and procfile specs on hand-built graphs (no parser involved), and
/// setup runs on the in-memory broker.
@Suite struct SetupLogicTests {
    typealias E = DesiredGraph.Endpoint

    /// spec/fixtures/imgflo-server.fbp, as msgflo's parser gives it (ports lower-cased).
    static let imgflo = DesiredGraph(
        nodes: [("imgflo_api", .init(component: "imgflo-server/HttpApi")),
                ("imgflo_jobs", .init(component: "msgflo/RoundRobin")),
                ("imgflo_worker", .init(component: "imgflo-server/ProcessImage")),
                ("drop", .init(component: "Drop"))],
        edges: [.init(E("imgflo_api", "newjob"), E("imgflo_jobs", "in")),
                .init(E("imgflo_jobs", "out"), E("imgflo_worker", "job")),
                .init(E("imgflo_worker", "jobresult"), E("imgflo_api", "jobresult")),
                .init(E("imgflo_jobs", "deadletter"), E("drop", "in"))],
        initials: [.init("ignored", to: E("imgflo_api", "iip"))])

    @Test func imgfloBindings() {
        let b = SetupBindings.fromConvention(Self.imgflo)
        #expect(b.count == 2)
        #expect(b[0] == .pubsub(src: "imgflo_worker.JOBRESULT", tgt: "imgflo_api.JOBRESULT",
                                edge: .init(E("imgflo_worker", "jobresult"), E("imgflo_api", "jobresult"))))
        #expect(b[1] == .roundRobin(name: "imgflo_jobs", src: "imgflo_api.NEWJOB", tgt: "imgflo_worker.JOB",
                                    deadletter: "drop.IN"))
        #expect(SetupBindings.pretty(b) == """
            Set up bindings:
             PUBSUB: \t imgflo_worker.JOBRESULT -> imgflo_api.JOBRESULT
            DEADLETTER:\t imgflo_worker.JOB -> drop.IN
            ROUNDROBIN:\t imgflo_api.NEWJOB -> imgflo_worker.JOB
            """)
        #expect(b[1].transportBindings == [Binding(.roundRobin, src: "imgflo_api.NEWJOB", tgt: "imgflo_worker.JOB"),
                                            Binding(.deadLetter, src: "imgflo_worker.JOB", tgt: "drop.IN")])
    }

    static func library(_ components: [String: String]) throws -> LibraryFile {
        let body = components.map { JSONValue.string($0.key).serialized + ":" + JSONValue.string($0.value).serialized }
        return try LibraryFile(json: "{\"components\":{" + body.joined(separator: ",") + "}}")
    }

    @Test func procfileFormat() throws {
        let lib = try Self.library(["imgflo-server/ProcessImage": "node worker.js --name #ROLE"])
        let text = try Procfile.generate(Self.imgflo, library: lib, ignore: ["imgflo_jobs", "imgflo_api", "drop"],
                                         include: ["web: node index.js"])
        #expect(text + "\n" == "imgflo_worker: node worker.js --name imgflo_worker\nweb: node index.js\n")
        #expect(throws: ToolFailure.self) {
            try Procfile.generate(Self.imgflo, library: try Self.library([:]), ignore: [], include: [])
        }
        let iips = DesiredGraph(nodes: [("fast", .init(component: "W"))], initials: [.init("8082", to: E("fast", "port"))])
        let t2 = try Procfile.generate(iips, library: try Self.library(["W": "run --iips #IIPS"]), ignore: [], include: [])
        #expect(t2 == "fast: run --iips '{\"port\":\"8082\"}'\n")
    }

    /// A JSON graph read through the FBP adapter the coordinator uses too: processes, edges and IIPs in graph order.
    /// The tools start and connect only nodes that name a component (an explicit "" names one); an edge to a process
    /// the graph does not declare is skipped. The coordinator counts both as participants it waits for.
    @Test func jsonGraphNodesWithoutComponents() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("setup-logic-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            {"processes": {"a": {"component": "Repeat"}, "nocomp": {}, "empty": {"component": ""}, "b": {"component": "Repeat"}},
             "connections": [
              {"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}},
              {"data": "hello", "tgt": {"process": "b", "port": "greet"}},
              {"src": {"process": "a", "port": "x"}, "tgt": {"process": "nocomp", "port": "in"}},
              {"src": {"process": "a", "port": "y"}, "tgt": {"process": "empty", "port": "in"}},
              {"src": {"process": "a", "port": "z"}, "tgt": {"process": "ghost", "port": "in"}},
              {"data": 3, "tgt": {"process": "a", "port": "n"}},
              {"data": 4, "tgt": {"process": "a", "port": "m"}},
              {"src": {"process": "b", "port": "out"}, "tgt": {"process": "a", "port": "in"}}]}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let g = try GraphFile.load(path, requireProcesses: true)
        #expect(g.roles == ["a", "nocomp", "empty", "b"])
        #expect(g.nodes["nocomp"]?.component == "" && g.nodes["nocomp"]?.namesComponent == false)
        #expect(g.nodes["empty"]?.component == "" && g.nodes["empty"]?.namesComponent == true)
        #expect(g.edges.map(\.description) == ["a OUT -> IN b", "a X -> IN nocomp", "a Y -> IN empty", "a Z -> IN ghost", "b OUT -> IN a"])
        #expect(["a", "nocomp", "empty", "b", "ghost"].map(g.isDeclaredParticipant) == [true, false, true, true, false])
        #expect(["nocomp", "ghost"].allSatisfy(g.isParticipant))
        #expect(SetupBindings.pretty(SetupBindings.fromConvention(g)) == """
            Set up bindings:
             PUBSUB: \t a.OUT -> b.IN
            PUBSUB: \t a.Y -> empty.IN
            PUBSUB: \t b.OUT -> a.IN
            """)
        #expect(Setup(graph: g, options: .init(), library: nil, environment: [:]).rolesToStart() == ["a", "empty", "b"])
        let lib = try Self.library(["Repeat": "rep #ROLE #IIPS", "": "none #ROLE"])
        #expect(try Procfile.generate(g, library: lib, ignore: ["empty"], include: []) == """
            a: rep a '{"n":3,"m":4}'
            nocomp: none nocomp
            b: rep b '{"greet":"hello"}'

            """)
    }

    @Test func commandWords() throws {
        #expect(try CommandWords.split(#"prog --iips '{"a": 1}' "x y" a\ b  "#) == ["prog", "--iips", #"{"a": 1}"#, "x y", "a b"])
        #expect(throws: ToolFailure.self) { try CommandWords.split("prog 'open") }
        #expect(Setup.nodeArray([]) == "[]")
        #expect(Setup.nodeArray(["a", "b"]) == "[ 'a', 'b' ]")
    }

    static let simple = DesiredGraph(nodes: [("a", .init(component: "Repeat")), ("b", .init(component: "Repeat"))],
                                     edges: [.init(E("a", "out"), E("b", "in"))])

    @Test func staticSetupOnAMQPBindsEvenBeforeParticipantsExist() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.connect()
        let lines = Lines()
        let setup = Setup(graph: Self.simple, options: Setup.Options(), library: nil, environment: [:],
                          out: { lines.append($0) }, err: { lines.append("ERR " + $0) })
        let outcome = try await setup.run(on: transport, processes: ParticipantProcesses())
        #expect(outcome.bindings.count == 1)
        #expect(lines.all == ["Set up participants []", "Set up bindings:", " PUBSUB: \t a.OUT -> b.IN"])
        #expect(broker.boundQueues("a.OUT") == ["b.IN"])
    }

    @Test func discoverModeUsesAnnouncedQueues() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.connect()
        let other = InMemoryTransport(broker: broker)
        try await other.connect()
        try await other.declareOutport("/a/out")
        try await other.declareInport("/b/in")
        var options = Setup.Options()
        options.discover = true
        options.timeout = .seconds(30)  // returns as soon as both have announced; the margin is for a loaded machine
        let lines = Lines()
        let setup = Setup(graph: Self.simple, options: options, library: nil, environment: [:],
                          out: { lines.append($0) }, err: { lines.append("ERR " + $0) })
        let announcer = Task {
            try await Task.sleep(for: .milliseconds(100))
            try await other.announce(ParticipantDefinition(id: "a-1", role: "a", component: "Repeat",
                outports: [PortDefinition(id: "out", queue: "/a/out")]))
            try await other.announce(ParticipantDefinition(id: "b-1", role: "b", component: "Repeat",
                inports: [PortDefinition(id: "in", queue: "/b/in")]))
        }
        _ = try await setup.run(on: transport, processes: ParticipantProcesses())
        try await announcer.value
        #expect(lines.all == ["Set up participants []", "Set up bindings:", " PUBSUB: \t /a/out -> /b/in"])
        #expect(broker.boundQueues("/a/out") == ["/b/in"])
    }

    @Test func discoverModeTimesOutNamingTheMissingRole() async throws {
        let transport = InMemoryTransport()
        try await transport.connect()
        var options = Setup.Options()
        options.discover = true
        options.timeout = .milliseconds(200)
        let setup = Setup(graph: Self.simple, options: options, library: nil, environment: [:], out: { _ in }, err: { _ in })
        await #expect(throws: ToolFailure.self) { try await setup.run(on: transport, processes: ParticipantProcesses()) }
    }

    @Test func participantsThatDieBeforeAnnouncingFailSetup() async throws {
        let transport = InMemoryTransport()
        try await transport.connect()
        var options = Setup.Options()
        options.participants = true
        options.timeout = .seconds(60)
        let setup = Setup(graph: Self.simple, options: options,
                          library: try Self.library(["Repeat": "sh -c 'exit 3' #ROLE"]),
                          environment: ProcessInfo.processInfo.environment, out: { _ in }, err: { _ in })
        let processes = ParticipantProcesses()
        let start = ContinuousClock.now
        do {
            _ = try await setup.run(on: transport, processes: processes)
            Issue.record("expected a failure")
        } catch let e as ToolFailure {
            #expect(e.message.contains("exited with status 3"), "\(e.message)")
        }
        // It failed because the child exited, before the 60 s discovery timeout (the margin is wide: a loaded
        // machine was seen to stall every test of the process for 32 s at start).
        #expect(ContinuousClock.now - start < .seconds(55))
        await processes.terminateAll()
    }

    @Test func mqttEdgesGoByConnectinportOrFailPlainly() async throws {
        let broker = InMemoryBroker()
        let url = BrokerURL(scheme: .mqtt, host: "in-memory")
        let transport = InMemoryTransport(broker: broker, url: url)
        try await transport.connect()
        let b = InMemoryTransport(broker: broker, url: url)
        try await b.connect()
        try await b.declareInport("b.CONTROL")
        let commands = try await b.consume("b.CONTROL")
        var options = Setup.Options()
        options.timeout = .seconds(5)
        let lines = Lines()
        let setup = Setup(graph: Self.simple, options: options, library: nil, environment: [:],
                          out: { lines.append($0) }, err: { _ in })
        let announcer = Task {
            for _ in 0..<50 {
                try await b.announce(ParticipantDefinition(id: "b-1", role: "b", component: "Repeat",
                    inports: [PortDefinition(id: "in", queue: "b.IN")], inqueue: "b.CONTROL",
                    capabilities: ["connectinport"]))
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let outcome = try await setup.run(on: transport, processes: ParticipantProcesses())
        announcer.cancel()
        #expect(outcome.connected.count == 1)
        #expect(lines.all == ["Set up participants []", "Set up bindings:", " PUBSUB: \t a.OUT -> b.IN"])
        for await d in commands {
            let c = try CoordinatorCommand(parsing: d.message)
            #expect(c.command == .connectInport && c.port == "in" && c.queue == "a.OUT")
            break
        }

        // Nobody takes connectinport, and no --forever: a plain one-line failure naming the edge.
        options.timeout = .milliseconds(300)
        let plain = Setup(graph: Self.simple, options: options, library: nil, environment: [:], out: { _ in }, err: { _ in })
        do {
            _ = try await plain.run(on: InMemoryTransport(broker: InMemoryBroker(), url: url).connected(), processes: ParticipantProcesses())
            Issue.record("expected a failure")
        } catch let e as ToolFailure {
            #expect(e.message.hasPrefix("not connected: a.OUT -> b.IN (b does not take connectinport"), "\(e.message)")
            #expect(e.message.contains("--forever"))
        }
    }

    @Test func onlyAndIgnoreChooseTheRolesToStart() throws {
        var options = Setup.Options()
        let lib = try Self.library(["imgflo-server/ProcessImage": "w #ROLE", "imgflo-server/HttpApi": "a #ROLE", "Drop": "d #ROLE"])
        var setup = Setup(graph: Self.imgflo, options: options, library: lib, environment: [:])
        // RoundRobin nodes are not participants: never started.
        #expect(setup.rolesToStart() == ["imgflo_api", "imgflo_worker", "drop"])
        options.only = ["imgflo_worker", "drop", "imgflo_jobs"]
        options.ignore = ["drop"]
        setup.options = options
        #expect(setup.rolesToStart() == ["imgflo_worker"])
        #expect(try setup.commands().map(\.command) == ["w imgflo_worker"])
    }

    @Test func shellRunsTheCommandThroughIt() async throws {
        let transport = InMemoryTransport()
        try await transport.connect()
        var options = Setup.Options()
        options.participants = true
        options.shell = "/bin/sh"
        options.timeout = .seconds(10)
        let setup = Setup(graph: Self.simple, options: options,
                          library: try Self.library(["Repeat": "test #ROLE = a && exit 5; exit 6"]),
                          environment: ProcessInfo.processInfo.environment, out: { _ in }, err: { _ in })
        let processes = ParticipantProcesses()
        do {
            _ = try await setup.run(on: transport, processes: processes)
            Issue.record("expected a failure")
        } catch let e as ToolFailure {
            #expect(e.message.contains("exited with status 5") || e.message.contains("exited with status 6"), "\(e.message)")
        }
        await processes.terminateAll()
    }

    /// A participant that announces and exits (msgflo-register --forever false) is ready, not failed (listening
    /// starts before it is spawned, msgflo issue 94).
    @Test func participantsThatAnnounceAndExitAreReady() async throws {
        let broker = InMemoryBroker()
        let transport = InMemoryTransport(broker: broker)
        try await transport.connect()
        let announcer = InMemoryTransport(broker: broker)
        try await announcer.connect()
        var options = Setup.Options()
        options.participants = true
        options.timeout = .seconds(10)
        let lines = Lines()
        let setup = Setup(graph: Self.simple, options: options, library: try Self.library(["Repeat": "true #ROLE"]),
                          environment: ProcessInfo.processInfo.environment, out: { lines.append($0) }, err: { _ in })
        let processes = ParticipantProcesses()
        let announce = Task {
            // Once the children have exited (as msgflo-register --forever false does after announcing).
            let deadline = ContinuousClock.now + .seconds(20)
            while processes.exits.count < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            for role in ["a", "b"] {
                try await announcer.announce(ParticipantDefinition(id: role, role: role, component: "Repeat"))
            }
        }
        let outcome = try await setup.run(on: transport, processes: processes)
        try await announce.value
        #expect(outcome.started == ["a", "b"])
        #expect(lines.all.first == "Set up participants [ 'a', 'b' ]")
        await processes.terminateAll()
    }
}

extension InMemoryTransport {
    func connected() async throws -> InMemoryTransport {
        try await connect()
        return self
    }
    /// msgflo-setup's children are started like the daemon's (ChildProcess): stderr kept for the failure line, a
    /// child that ignores SIGTERM is killed after the grace period, and terminateAll returns when they are gone.
    @Test func participantProcessesKeepStderrAndStopEvenStubbornChildren() async throws {
        let processes = ParticipantProcesses()
        let url = BrokerURL(scheme: .amqp, host: "localhost")
        try await processes.start(role: "stubborn", command: "trap '' TERM; echo 'ready here' >&2; exec sleep 30", broker: url,
                                  forward: [], shell: "/bin/sh", environment: ProcessInfo.processInfo.environment)
        try await processes.start(role: "quick", command: "echo bye >&2; exit 4", broker: url,
                                  forward: [], shell: "/bin/sh", environment: ProcessInfo.processInfo.environment)
        let deadline = ContinuousClock.now + .seconds(20)
        while processes.exits.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let quick = try #require(processes.exits.first)
        #expect(quick.role == "quick" && quick.status == 4 && !quick.signaled)
        // The stderr reader may lag the exit by a moment.
        while processes.lastStderrLines(pid: quick.pid) != ["bye"] && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(processes.lastStderrLines(pid: quick.pid) == ["bye"])
        let stubborn = try #require(processes.pid(of: "stubborn"))
        while processes.lastStderrLines(pid: stubborn) != ["ready here"] && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        await processes.terminateAll(grace: .milliseconds(300))
        let killed = try #require(processes.exits.first { $0.role == "stubborn" })
        #expect(killed.signaled && killed.status == SIGKILL)
        #expect(kill(stubborn, 0) != 0)   // gone, and reaped

        await #expect(throws: ToolFailure.self) {
            try await processes.start(role: "x", command: "no-such-program-here #ROLE", broker: url, forward: [], shell: nil,
                                      environment: ["PATH": "/usr/bin:/bin"])
        }
    }
}
