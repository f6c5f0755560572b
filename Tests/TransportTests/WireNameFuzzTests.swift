import Foundation
import Logging
import MsgFlo
import MsgFloAMQP
import MsgFloMQTT
import Synchronization
import TestSupport
import Testing

/// Issue 10, item 1: random names (random bytes, lengths 0-100,000) thrown at every call of a transport on the real
/// brokers. Each call either works or fails alone; the connection never drops, and good traffic keeps flowing.
@Suite(.serialized) struct WireNameFuzzTests {
    /// A generator with a seed, so that a failure can be replayed (the seed is in the test's message).
    /// xorshift64*: small, and enough for picking bytes.
    struct Rng {
        var state: UInt64
        init(state: UInt64) { self.state = state == 0 ? 0x2545_F491_4F6C_DD1D : state }
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Names on the edges of the rules, then random ones: raw bytes (decoded as UTF-8 with replacement, as a
    /// discovery message's JSON string would be), or characters MQTT and AMQP treat specially.
    static func names(count: Int, seed: UInt64) -> [String] {
        var out = [
            "", "a\u{0}b", String(repeating: "é", count: 200), String(repeating: "a", count: 255),
            String(repeating: "a", count: 256), String(repeating: "é", count: 128), "a/+/b", "a/#", "#", "+",
            "$SYS/x", "amq.x", "a\u{1}b", "\u{7F}", String(Character(Unicode.Scalar(UInt32(0xFFFF))!)), String(repeating: "z", count: 65_535),
            String(repeating: "z", count: 65_536), String(repeating: "\u{1F600}", count: 25_000),
        ]
        var rng = Rng(state: seed)
        let special: [UInt8] = Array("+#/$.\0\u{1}\u{1B} amq-é".utf8)
        for _ in 0..<count {
            let length: Int
            switch rng.below(10) {
            case 0: length = rng.below(100_001)
            case 1: length = 250 + rng.below(12)
            default: length = rng.below(300)
            }
            var bytes = [UInt8](repeating: 0, count: length)
            let mode = rng.below(3)
            for i in 0..<length {
                switch mode {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes[i] = special[rng.below(special.count)]
                default: bytes[i] = rng.below(8) == 0 ? special[rng.below(special.count)] : UInt8(97 + rng.below(26))
                }
            }
            out.append(String(decoding: bytes, as: UTF8.self))
        }
        return out
    }

    /// Every call that takes a name; errors are expected and ignored, the connection is what is watched.
    static func exercise(_ t: any Transport, _ name: String, goodQueue: String) async {
        _ = try? await t.send(toInport: name, Message(text: "x"))
        _ = try? await t.send(toOutport: name, Message(text: "x"))
        _ = try? await t.queueDepth(name)
        _ = try? await t.exchangeExists(name)
        if let sub = try? await t.consume(name, options: ConsumeOptions(prefetch: 1)) { await sub.cancel() }
        // Made and undone: an auto-deleted exchange goes away with its last binding.
        if (try? await t.declareOutport(name, options: QueueOptions(persistent: false))) != nil {
            let b = Binding(.pubsub, src: name, tgt: goodQueue)
            if (try? await t.addBinding(b)) != nil { _ = try? await t.removeBinding(b) }
        }
        _ = try? await t.addBinding(Binding(.roundRobin, src: name, tgt: goodQueue))
        _ = try? await t.addBinding(Binding(.deadLetter, src: name, tgt: goodQueue))
    }

    static func transport(_ kind: TestBrokers.Kind) async throws -> any Transport {
        let quiet = testLogger("fuzz", level: .critical)
        let url = try TestBrokers.url(kind)
        let t: any Transport = kind == .amqp ? try AMQPTransport(url: url, logger: quiet)
                                             : try MQTTTransport(broker: url, logger: quiet)
        try await t.connect()
        return t
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func randomNamesNeverDropTheConnection(_ kind: TestBrokers.Kind) async throws {
        let seed = ProcessInfo.processInfo.environment["MSGFLO_FUZZ_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        let t = try await Self.transport(kind)
        let reconnects = ReconnectCounter(t)
        let good = TestBrokers.unique("fuzz.GOOD")
        try await t.declareInport(good, options: QueueOptions(persistent: false))
        let received = Collector(try await t.consume(good))
        // MSGFLO_FUZZ_NAMES=N for a longer run (the suite runs 150 per broker).
        let count = ProcessInfo.processInfo.environment["MSGFLO_FUZZ_NAMES"].flatMap { Int($0) } ?? 150
        let names = Self.names(count: count, seed: seed)
        var sent = 0
        for (i, name) in names.enumerated() {
            await Self.exercise(t, name, goodQueue: good)
            if i % 5 == 0 {
                try await t.send(toInport: good, Message(text: "\(i)"))
                sent += 1
            }
        }
        // At least once: a message may come twice (sent again after the broker closed the publishing channel).
        var distinct: Set<String> = []
        let deadline = ContinuousClock.now + .seconds(30)
        while distinct.count < sent && ContinuousClock.now < deadline {
            // Numbers only: a random name that is an MQTT wildcard, left bound to the good queue by a round-robin
            // binding, routes later names' "x" into it too (seen once: 35 distinct of 34 sent).
            distinct = Set(received.snapshot().compactMap(\.message.text).filter { Int($0) != nil })
            if distinct.count < sent { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(distinct.count == sent, "seed \(seed): \(distinct.count) of \(sent) good messages arrived")
        #expect(reconnects.value == 0, "seed \(seed): the connection dropped")
        #expect(t.state == .connected, "seed \(seed)")
        await received.cancel()
        await t.close()
    }

    /// Mandatory sends (what the tools use): into no queue is `.notFound` for that call alone; into a queue works;
    /// both interleaved with ordinary sends, which are not held up. MQTT cannot tell and just sends.
    @Test func mandatorySendIntoNoQueueFailsAlone() async throws {
        let t = try await Self.transport(.amqp)
        let reconnects = ReconnectCounter(t)
        let good = TestBrokers.unique("mandatory.IN")
        try await t.declareInport(good, options: QueueOptions(persistent: false))
        let received = Collector(try await t.consume(good))
        for i in 0..<20 {
            await #expect(throws: MsgFloError.self) {
                try await t.sendRouted(toInport: good + ".nowhere", Message(text: "lost \(i)"))
            }
            do {
                try await t.sendRouted(toInport: good.uppercased() + "-nope", Message(text: "x"))
            } catch let e as MsgFloError {
                #expect(e.code == .notFound, "\(e)")
                #expect(e.message.contains("no queue"), "\(e)")
            }
            try await t.send(toInport: good, Message(text: "plain \(i)"))
            try await t.sendRouted(toInport: good, Message(text: "routed \(i)"))
        }
        let got = await received.wait(count: 40)
        #expect(got.count == 40)
        #expect(reconnects.value == 0)
        let m = try await Self.transport(.mqtt)
        try await m.sendRouted(toInport: TestBrokers.unique("nobody/listens"), Message(text: "x"))
        await m.close()
        await received.cancel()
        await t.close()
    }
}

