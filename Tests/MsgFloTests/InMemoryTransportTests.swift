import MsgFlo
import Testing

/// The in-memory broker must behave like msgflo's AMQP layout, or the unit tests above it prove nothing.
@Suite struct InMemoryTransportTests {
    func connected() async throws -> InMemoryTransport {
        let t = InMemoryTransport()
        try await t.connect()
        return t
    }

    func next(_ it: inout Subscription.AsyncIterator) async -> Delivery? { await it.next() }

    @Test func boundOutportDeliversAndUnbindStops() async throws {
        let t = try await connected()
        try await t.declareOutport("a.OUT")
        try await t.declareInport("b.IN")
        try await t.addBinding(Binding(src: "a.OUT", tgt: "b.IN"))
        let sub = try await t.consume("b.IN")
        var it = sub.makeAsyncIterator()
        try await t.send(toOutport: "a.OUT", Message(text: "one"))
        let d = try #require(await next(&it))
        #expect(d.message == Message(text: "one"))
        d.ack()
        try await t.removeBinding(Binding(src: "a.OUT", tgt: "b.IN"))
        try await t.send(toOutport: "a.OUT", Message(text: "two"))
        #expect(t.memory.depth("b.IN") == 0)
        await t.close()
    }

    @Test func roundRobinWorkersShareOneQueueAndNacksAreDeadLettered() async throws {
        let t = try await connected()
        try await t.declareOutport("src.OUT")
        for q in ["work.IN", "dead.IN"] { try await t.declareInport(q) }
        try await t.addBinding(Binding(.roundRobin, src: "src.OUT", tgt: "work.IN"))
        try await t.addBinding(Binding(.deadLetter, src: "work.IN", tgt: "dead.IN"))
        var i1 = try await t.consume("work.IN", options: ConsumeOptions(prefetch: 1)).makeAsyncIterator()
        var i2 = try await t.consume("work.IN", options: ConsumeOptions(prefetch: 1)).makeAsyncIterator()
        try await t.send(toOutport: "src.OUT", Message(text: "a"))
        try await t.send(toOutport: "src.OUT", Message(text: "b"))
        let d1 = try #require(await next(&i1))
        let d2 = try #require(await next(&i2))
        #expect(Set([d1.message, d2.message]) == [Message(text: "a"), Message(text: "b")])
        d1.ack()
        d2.nack()
        #expect(t.memory.depth("dead.IN") == 1)
        #expect(t.memory.depth("work.IN") == 0)
        await t.close()
    }

    @Test func prefetchLimitsInFlight() async throws {
        let t = try await connected()
        try await t.declareInport("p.IN")
        for n in 0..<5 { try await t.send(toInport: "p.IN", Message(json: .int(n))) }
        var it = try await t.consume("p.IN", options: ConsumeOptions(prefetch: 2)).makeAsyncIterator()
        let a = try #require(await next(&it))
        _ = try #require(await next(&it))
        #expect(t.memory.depth("p.IN") == 3)
        a.ack()
        #expect(t.memory.depth("p.IN") == 2)
        await t.close()
        // The stream ends after close; what was already handed out may still be read first.
        var rest = 0
        while await it.next() != nil { rest += 1 }
        #expect(rest <= 2)
    }
}
