import ExampleParticipants
import MsgFloTesting
import Testing

/// The test kit participant authors use (MsgFloTesting), tested the way they would use it.
@Suite("ParticipantTester (MsgFloTesting)")
struct ParticipantTesterTests {
    @Test("a transform: what goes in comes out on its outport, in order, and every input is settled")
    func transform() async throws {
        let t = try await ParticipantTester.start(Examples.uppercase, role: "up")
        for s in ["a", "b", "c"] { try await t.send("in", json: .string(s)) }
        let out = try await t.waitForSent(on: "out", count: 3)
        #expect(Set(out.map(\.json)) == [.string("A"), .string("B"), .string("C")])
        try await t.settle()
        #expect(t.sent(on: "error").isEmpty)
        #expect(t.deadLettered(from: "in").isEmpty)
        await t.stop()
    }

    @Test("a failing handler: the error port gets the error, and the input is dead-lettered")
    func failure() async throws {
        let t = try await ParticipantTester.start(Examples.uppercase, role: "up")
        try await t.send("in", json: 42)
        let errors = try await t.waitForSent(on: "error", count: 1)
        #expect(errors[0].json?["inport"] == "in")
        #expect(errors[0].json?["input"] == 42)
        try await t.settle()
        #expect(t.deadLettered(from: "in").map(\.json) == [42])
        #expect(t.sent(on: "out").isEmpty)
        await t.stop()
    }

    @Test("without an error port, a throw and a nack dead-letter; the handler's own log lines are kept")
    func nackAndLogs() async throws {
        let part = Participant(component: "N", inports: ["in"], outports: ["out"]) { _, msg, ctx in
            ctx.participant.logger.info("got a message", metadata: ["kind": "\(msg.json?.kindName ?? "bytes")"])
            if msg.json == "nack" { ctx.nack(); return }
            if msg.json == "throw" { throw MsgFloError(.invalidMessage, "no") }
            try await ctx.send("out", msg)
        }
        let t = try await ParticipantTester.start(part, role: "n")
        for m: JSONValue in ["nack", "throw", "fine"] { try await t.send("in", json: m) }
        try await t.waitForSent(on: "out", count: 1)
        try await t.settle()
        #expect(Set(t.deadLettered(from: "in").map(\.json)) == ["nack", "throw"])
        let mine = t.logs.filter { $0.message == "got a message" }
        #expect(mine.count == 3)
        #expect(mine.allSatisfy { $0.level == .info && $0.metadata["role"] == "n" })
        await t.stop()
    }

    @Test("IIPs from the options arrive at start; a source's sends are kept from the first")
    func iipsAndSources() async throws {
        let t = try await ParticipantTester.start(Examples.interval, role: "tick",
                                                  options: ParticipantOptions(iips: ["interval": 5]))
        let out = try await t.waitForSent(on: "out", count: 3)
        #expect(Array(out.prefix(3)).map(\.json) == [0, 1, 2])
        await t.stop()
    }

    @Test("queues named by options and by the port are followed; unknown ports are one clear error")
    func namesAndMistakes() async throws {
        let part = Participant(component: "Q", inports: [Port("in", queue: "/house/light/1")], outports: ["out"]) { _, msg, ctx in
            try await ctx.send("out", msg)
        }
        let t = try await ParticipantTester.start(part, role: "q", options: ParticipantOptions(queues: ["out": "elsewhere"]))
        try await t.send("in", text: "on")
        #expect(try await t.waitForSent(on: "out", count: 1).map(\.text) == ["on"])
        #expect(t.running.definition.outport("out")?.queue == "elsewhere")
        await #expect(throws: MsgFloError.self) { try await t.send("nope", json: 1) }
        await #expect(throws: MsgFloError.self) { try await t.waitForSent(on: "nope", count: 1) }
        await t.stop()
    }

    @Test("a wait that is not met ends with a timeout error that says what was awaited")
    func timeout() async throws {
        let t = try await ParticipantTester.start(Examples.uppercase, role: "u")
        try await t.send("in", json: 1)  // not text: goes to the error port, nothing on out
        do {
            try await t.waitForSent(on: "out", count: 1, timeout: .milliseconds(100))
            Issue.record("Uppercase sent a number on out")
        } catch let e as MsgFloError {
            #expect("\(e)".contains("1 messages on outport out"))
        }
        await t.stop()
    }

    /// The example of participants/README.md, "Testing a participant", as it is written there.
    @Test("participants/README.md's example")
    func readmeExample() async throws {
        let uppercase = Examples.uppercase
        let t = try await ParticipantTester.start(uppercase, role: "up")   // options: IIPs, queues, prefetch…
        try await t.send("in", json: "hello")                              // also `text:`, `encoding:` or a Message
        let out = try await t.waitForSent(on: "out", count: 1)             // a timeout error says what it waited for
        #expect(out[0].json == "HELLO")
        try await t.send("in", json: 42)
        try await t.settle()            // every input handled and settled, and all that followed recorded
        #expect(t.sent(on: "error").count == 1)
        #expect(t.deadLettered(from: "in").map(\.json) == [42])
        #expect(t.logs.map(\.level) == [.warning])  // what it logged (the failure): level, message, metadata
        await t.stop()
    }
}
