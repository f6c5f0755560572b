import MsgFlo
import Testing

/// The one check of names on the wire, counted in bytes (the bug: "é" × 200 passed a check of 255 characters).
@Suite struct WireNameTests {
    @Test func amqpCountsBytesNotCharacters() {
        #expect(WireName.isValid(String(repeating: "a", count: 255), .amqp))
        #expect(!WireName.isValid(String(repeating: "a", count: 256), .amqp))
        #expect(!WireName.isValid(String(repeating: "é", count: 200), .amqp))   // 200 characters, 400 bytes
        #expect(WireName.isValid(String(repeating: "é", count: 127), .amqp))    // 254 bytes
        #expect(!WireName.isValid(String(repeating: "é", count: 128), .amqp))   // 256 bytes
        #expect(!WireName.isValid("", .amqp))
        #expect(!WireName.isValid("a\u{0}b", .amqp))
        #expect(WireName.isValid("a b+#$\u{1}", .amqp))  // RabbitMQ takes these; librabbitmq does too
    }

    @Test func mqttTopicsAndFilters() {
        #expect(WireName.isValid(String(repeating: "é", count: 200), .mqtt))
        #expect(WireName.isValid(String(repeating: "a", count: 65_535), .mqtt))
        #expect(!WireName.isValid(String(repeating: "a", count: 65_536), .mqtt))
        let nonCharacters = [0xFDD0, 0xFFFF, 0x1FFFE].map { "a" + String(Character(Unicode.Scalar(UInt32($0))!)) }
        for bad in ["", "a\u{0}b", "a\u{7}", "a\u{7F}", "a\u{85}"] + nonCharacters {
            #expect(!WireName.isValid(bad, .mqtt), "\(bad.unicodeScalars.map { $0.value })")
            #expect(!WireName.isValid(bad, .mqtt, use: .filter))
        }
        #expect(!WireName.isValid("a/+/b", .mqtt))
        #expect(!WireName.isValid("a/#", .mqtt))
        #expect(!WireName.isValid("$SYS/x", .mqtt))
        #expect(WireName.isValid("a/+/b", .mqtt, use: .filter))
        #expect(WireName.isValid("a/#", .mqtt, use: .filter))
        #expect(WireName.isValid("#", .mqtt, use: .filter))
        #expect(!WireName.isValid("a/#/b", .mqtt, use: .filter))
        #expect(!WireName.isValid("a/b#", .mqtt, use: .filter))
        #expect(!WireName.isValid("a/b+/c", .mqtt, use: .filter))
    }

    @Test func errorIsOneShortLine() {
        let long = String(repeating: "é", count: 50_000)
        #expect(throws: MsgFloError.self) { try WireName.check(long, .amqp, what: "reply queue") }
        do {
            try WireName.check(long, .amqp, what: "reply queue")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.utf8.count < 300, "\(error.message)")
            #expect(error.message.contains("100000 bytes"))
        }
    }

    @Test func definitionsAreCheckedPortByPort() throws {
        var d = ParticipantDefinition(id: "p1", role: "p", component: "C",
                                      inports: [PortDefinition(id: "in", queue: "p.IN")],
                                      outports: [PortDefinition(id: "out", queue: String(repeating: "x", count: 400))])
        #expect(throws: MsgFloError.self) { try d.checkWireNames(.amqp) }
        try d.checkWireNames(.mqtt)
        d.outports[0].queue = "p.OUT"
        try d.checkWireNames(.amqp)
        d.inqueue = "cmd\u{0}"
        #expect(throws: MsgFloError.self) { try d.checkWireNames(.amqp) }
    }

    @Test func bindingsCheckDerivedExchanges() throws {
        let src = String(repeating: "s", count: 252)
        try Binding(.pubsub, src: src, tgt: "t").checkWireNames(.amqp)
        #expect(throws: MsgFloError.self) { try Binding(.roundRobin, src: src, tgt: "t").checkWireNames(.amqp) }  // out-…: 256
        #expect(throws: MsgFloError.self) { try Binding(.deadLetter, src: src, tgt: "t").checkWireNames(.amqp) }  // dead-…: 257
    }
}
