import Foundation
import MsgFlo
@testable import MsgFloTools
import Testing

/// The tools' logic on the in-memory broker. The same tools run as processes on real brokers in ToolProcessTests.
@Suite struct ToolLogicTests {
    func memory() -> (InMemoryBroker, ToolEnvironment) {
        let broker = InMemoryBroker()
        let env = ToolEnvironment(makeTransport: { url, _, _ in InMemoryTransport(broker: broker, url: url) },
                                  environment: [:])
        return (broker, env)
    }

    func run<C: ParsableCommandType>(_ type: C.Type, _ args: [String], _ env: ToolEnvironment) async -> (Int32, [String]) {
        let lines = Lines()
        let status = await ToolEnvironment.$current.withValue(env) {
            await ToolMain.execute(type, arguments: args, errorLine: { lines.append($0) })
        }
        return (status, lines.all)
    }

    @Test func compactKeepsKeyOrderAndNumberSpelling() {
        #expect(JSONText.compact(Array(#"{ "b" : 1, "a": [1.50, "x y"] }"#.utf8)) == #"{"b":1,"a":[1.50,"x y"]}"#)
        #expect(JSONText.compact(Array("not json".utf8)) == nil)
        #expect(JSONText.display(Message(text: "plain text")) == #""plain text""#)
        #expect(JSONText.display(Message(text: #"" a \" b ""#)) == #"" a \" b ""#)
    }

    @Test func payloadValidation() throws {
        #expect(try SendMessage.payload(from: .json(#"{"a": 1}"#)).text == #"{"a": 1}"#)
        #expect(try SendMessage.payload(from: .stdin, readStdin: { Data("[1,2]\n".utf8) }).text == "[1,2]")
        #expect(throws: ToolFailure.self) { try SendMessage.payload(from: .json("{nope")) }
        do {
            _ = try SendMessage.payload(from: .json("{nope"))
        } catch let e as ToolFailure {
            #expect(e.message.hasPrefix("Invalid JSON: "))
        }
        #expect(throws: ToolFailure.self) { try SendMessage.payload(from: .file("/nonexistent/file.json")) }
    }

    @Test func sendThenDumpAnInportQueue() async throws {
        let (broker, env) = memory()
        let setup = InMemoryTransport(broker: broker)
        try await setup.connect()
        try await setup.declareInport("a.IN")
        let (status, errors) = await run(SendMessageCommand.self,
                                         ["--broker", "amqp://localhost", "--queue", "a.IN", "--json", #"{"x": 1}"#, "--repeat", "3"], env)
        #expect(status == 0, "\(errors)")
        #expect(broker.depth("a.IN") == 3)

        let transport = InMemoryTransport(broker: broker)
        try await transport.connect()
        let (sub, source) = try await DumpMessage.open("a.IN", on: transport)
        #expect(source == .queue)
        let printed = Lines()
        try await DumpMessage.run(sub, amount: 2, follow: false, print: { printed.append($0) })
        #expect(printed.all == [#"[{"x":1},{"x":1}]"#])
        let one = Lines()
        try await DumpMessage.run(sub, amount: 1, follow: false, print: { one.append($0) })
        #expect(one.all == [#"{"x":1}"#])
    }

    @Test func dumpAnOutportTapsItsExchange() async throws {
        let (broker, _) = memory()
        let participant = InMemoryTransport(broker: broker)
        try await participant.connect()
        try await participant.declareOutport("b.OUT")
        let transport = InMemoryTransport(broker: broker)
        try await transport.connect()
        let (sub, source) = try await DumpMessage.open("b.OUT", on: transport)
        #expect(source == .outportTap)
        try await participant.send(toOutport: "b.OUT", Message(text: #"{"n":1}"#))
        try await participant.send(toOutport: "b.OUT", Message(text: "raw"))
        let printed = Lines()
        try await DumpMessage.run(sub, amount: 2, follow: true, print: { printed.append($0) })
        #expect(printed.all == [#"{"n":1}"#, #""raw""#])
    }

    @Test func badArgumentsAreOneLine() async {
        let (_, env) = memory()
        let cases: [(any ParsableCommandType.Type, [String], String)] = [
            (SendMessageCommand.self, ["--json", "{}"], "Missing queue to send to (--queue)"),
            (SendMessageCommand.self, ["--queue", "q", "--json", "{x"], "Invalid JSON"),
            (SendMessageCommand.self, ["--queue", "q", "--bogus"], "--bogus"),
            (SendMessageCommand.self, ["--queue", "q", "--json", "1", "--broker", "http://x"], "unsupported scheme"),
            (DumpMessageCommand.self, ["--amount", "2"], "Missing queue"),
            (RegisterCommand.self, ["--forever", "maybe", "--role", "a:b.yaml"], "--forever"),
            (RegisterCommand.self, ["--role", "a:/nonexistent.yaml"], "cannot read definition '/nonexistent.yaml'"),
        ]
        for (type, args, expected) in cases {
            let (status, lines) = await run(type, args, env)
            #expect(status == 1, "\(args)")
            #expect(lines.count == 1, "\(args): \(lines)")
            #expect(lines.first?.contains(expected) == true, "\(args): \(lines)")
        }
    }

    @Test func passwordsNeverPrinted() async {
        let (_, env) = memory()
        let (status, lines) = await run(SendMessageCommand.self,
                                        ["--queue", "q", "--json", "1", "--broker", "amqp://u:s3cret@h:notaport/"], env)
        #expect(status == 1)
        #expect(lines.count == 1)
        #expect(!lines.joined().contains("s3cret"))
    }

    @Test func registerYAMLMapAndListPorts() throws {
        let list = """
        component: 'my/ToggleSwitch'
        icon: 'file-word-o'
        label: 'A toggle switch'
        inports: []
        outports:
        -
          id: 'state'
          type: 'boolean'
          description: 'ff'
          queue: '/myswitch/#ROLE/status'
        """
        let d = try Register.definition(yaml: list, role: "switch1", path: "t.yaml")
        #expect(d.id == "switch1" && d.role == "switch1" && d.component == "my/ToggleSwitch")
        #expect(d.outports == [PortDefinition(id: "state", type: "boolean", queue: "/myswitch/switch1/status", description: "ff")])
        let map = """
        component: Lamp
        id: lamp-7
        inports:
          on: {queue: '/lamp/#ROLE/on', type: boolean}
          level: {}
        outports:
          state: ~
        """
        let m = try Register.definition(yaml: map, role: "kitchen", path: "m.yaml")
        #expect(m.id == "lamp-7")
        #expect(m.inports.map(\.id) == ["on", "level"])
        #expect(m.inports.map(\.queue) == ["/lamp/kitchen/on", "kitchen.LEVEL"])
        #expect(m.outports.map(\.queue) == ["kitchen.STATE"])
        #expect(throws: ToolFailure.self) { try Register.definition(yaml: "label: x", role: "r", path: "x.yaml") }
        #expect(throws: ToolFailure.self) { try Register.definition(yaml: "component: [", role: "r", path: "x.yaml") }
    }

    @Test func registerOnceWithForeverFalse() async throws {
        let (broker, env) = memory()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("a.yaml")
        try "component: Foo\ninports: {in: {}}\n".write(to: file, atomically: true, encoding: .utf8)
        let probe = InMemoryTransport(broker: broker)
        try await probe.connect()
        try await probe.declareDiscoveryQueue()
        let (status, errors) = await run(RegisterCommand.self, ["--role", "r1:\(file.path)", "--forever", "false"], env)
        #expect(status == 0, "\(errors)")
        #expect(broker.depth("fbp") == 1)
        let sub = try await probe.consume("fbp")
        for await d in sub {
            let def = try Discovery.parse(d.message)
            #expect(def.id == "r1" && def.component == "Foo" && def.inports.first?.queue == "r1.IN")
            #expect(def.heartbeat == nil)
            break
        }
    }
}

typealias ParsableCommandType = ArgumentParserParsableCommand

final class Lines: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ s: String) { storage.withLock { $0.append(s) } }
    var all: [String] { storage.withLock { $0 } }
}

import ArgumentParser
import Synchronization
typealias ArgumentParserParsableCommand = ParsableCommand
