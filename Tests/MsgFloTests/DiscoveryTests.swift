import MsgFlo
import Testing

@Suite struct DiscoveryTests {
    static let repeater = ParticipantDefinition(
        id: "repeater-1", role: "repeater", component: "Repeat", label: "Repeats in data without changes",
        icon: "file-word-o",
        inports: [PortDefinition(id: "in", queue: "repeater.IN")],
        outports: [PortDefinition(id: "out", queue: "repeater.OUT"), PortDefinition(id: "hidden", hidden: true)])

    @Test func envelopeHasMsgflosFields() throws {
        let json = try Discovery.message(for: Self.repeater).decodeJSON()
        #expect(json["protocol"] == "discovery")
        #expect(json["command"] == "participant")
        let payload = try #require(json["payload"]?.objectValue)
        #expect(Set(payload.keys) == ["id", "role", "component", "label", "icon", "inports", "outports"])
        #expect(payload["inports"] == [["id": "in", "type": "any", "queue": "repeater.IN", "hidden": false]])
        // Hidden ports are left out.
        #expect(payload["outports"]?.arrayValue?.count == 1)
    }

    @Test func extensionsAreOptionalAndRoundTrip() throws {
        var d = Self.repeater
        d.outports.removeLast()
        d.heartbeat = 10
        d.inqueue = "repeater.MSGFLO"
        d.capabilities = ["connectinport", "disconnectinport"]
        let back = try Discovery.parse(Discovery.message(for: d))
        #expect(back == d)
        #expect(back.supports(.connectInport))
        #expect(!back.supports(.connectOutport))
    }

    @Test func defaultQueueName() {
        #expect(PortDefinition.defaultQueue(role: "myRole", port: "in") == "myRole.IN")
    }

    @Test func nodejsMessageParses() throws {
        let text = #"{"protocol":"discovery","command":"participant","payload":{"component":"Repeat","icon":"file-word-o","label":"Repeats in data without changes","inports":[{"id":"in","type":"any","hidden":false,"queue":"repeater.IN"}],"outports":[{"id":"out","type":"any","hidden":false,"queue":"repeater.OUT"}],"role":"repeater","id":"repeater-6f1c"}}"#
        let d = try Discovery.parse(Message(text: text))
        #expect(d.role == "repeater")
        #expect(d.inports.first?.queue == "repeater.IN")
        #expect(d.heartbeat == nil)
    }

    @Test(arguments: [
        ("not json", "not valid JSON"),
        ("[]", "expected an object"),
        (#"{"protocol":"fbp","command":"participant","payload":{}}"#, "'protocol'"),
        (#"{"protocol":"discovery","command":"x","payload":{}}"#, "'command'"),
        (#"{"protocol":"discovery","command":"participant"}"#, "missing 'payload'"),
        (#"{"protocol":"discovery","command":"participant","payload":{"role":"r","component":"c","inports":[],"outports":[]}}"#, "missing 'id'"),
        (#"{"protocol":"discovery","command":"participant","payload":{"id":5,"role":"r","component":"c","inports":[],"outports":[]}}"#, "'id' must be a string"),
        (#"{"protocol":"discovery","command":"participant","payload":{"id":"a","role":"r","component":"c","inports":{},"outports":[]}}"#, "'inports' must be an array"),
        (#"{"protocol":"discovery","command":"participant","payload":{"id":"a","role":"r","component":"c","inports":[{"type":"x"}],"outports":[]}}"#, "inports[0]: missing or non-string 'id'"),
        (#"{"protocol":"discovery","command":"participant","payload":{"id":"a","role":"r","component":"c","inports":[],"outports":[],"heartbeat":-1}}"#, "'heartbeat' must be a positive number"),
    ])
    func garbageGivesOneLineErrors(text: String, why: String) {
        do {
            _ = try Discovery.parse(Message(text: text))
            Issue.record("parsed: \(text)")
        } catch {
            #expect(error.description.contains(why), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func hugeMessageRefusedUnparsed() {
        let huge = Message(bytes: [UInt8](repeating: 0x20, count: Discovery.maximumMessageSize + 1))
        #expect(throws: MsgFloError.self) { try Discovery.parse(huge) }
    }

    @Test func coordinatorCommandShapes() throws {
        let c = CoordinatorCommand(.connectInport, port: "in", queue: "a.OUT", graph: "main")
        let json = c.json
        #expect(json["protocol"] == "msgflo")
        #expect(json["command"] == "connectinport")
        #expect(json["payload"]?["src"]?["queue"] == "a.OUT")
        #expect(json["payload"]?["tgt"]?["port"] == "in")
        #expect(try CoordinatorCommand(parsing: c.message) == CoordinatorCommand(
            .connectInport, port: "in", queue: "a.OUT", queueOptions: .object([:]), graph: "main", metadata: .object([:])))
        let out = CoordinatorCommand(.connectOutport, port: "out", queue: "b.IN")
        #expect(out.json["payload"]?["src"]?["port"] == "out")
        #expect(out.json["payload"]?["tgt"]?["queue"] == "b.IN")
        #expect(throws: MsgFloError.self) { try CoordinatorCommand(parsing: Message(text: #"{"protocol":"msgflo","command":"explode","payload":{}}"#)) }
    }
}
