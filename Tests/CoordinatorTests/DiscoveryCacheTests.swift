import MsgFlo
import Testing
@testable import MsgFloCoordinator

@Suite struct DiscoveryCacheTests {
    @Test func sameBytesAreParsedOnceAndGiveTheSameDefinition() throws {
        var cache = DiscoveryCache()
        let p = participant("a-1", role: "a")
        let m = Discovery.message(for: p)
        #expect(try cache.parse(m).get() == p)
        #expect(cache.count == 1)
        // A copy of the bytes (as a new delivery would bring) is found, not parsed again.
        #expect(try cache.parse(Message(bytes: Array(m.bytes))).get() == p)
        #expect(cache.count == 1)
    }

    /// A key leaves its timestamp out in place: keys whose remaining bytes are the same are equal and have the same
    /// digest, wherever the left-out part was.
    @Test func keysCompareTheBytesOutsideTheirSkippedPart() {
        typealias Key = DiscoveryCache.Key
        let plain = Key(bytes: Array("abcdef".utf8))
        let a = Key(bytes: Array("abXXcdef".utf8), skip: 2..<4)
        let b = Key(bytes: Array("abcdYYYef".utf8), skip: 4..<7)
        let c = Key(bytes: Array("abcdefZ".utf8), skip: 6..<7)
        for k in [a, b, c] {
            #expect(k == plain)
            #expect(k.digest == plain.digest)
        }
        #expect(Key(bytes: Array("abXXcdeg".utf8), skip: 2..<4) != plain)
        #expect(Key(bytes: Array("abcde".utf8)) != plain)
        #expect(Key(bytes: []) == Key(bytes: Array("XY".utf8), skip: 0..<2))
    }

    @Test func changedBytesAreParsedAgain() throws {
        var cache = DiscoveryCache()
        var p = participant("a-1", role: "a")
        _ = cache.parse(Discovery.message(for: p))
        p.outports.append(PortDefinition(id: "extra", queue: "a.EXTRA"))
        #expect(try cache.parse(Discovery.message(for: p)).get() == p)
        #expect(cache.count == 2)
    }

    @Test func badMessagesAreRefusedEveryTimeAndNotKept() {
        var cache = DiscoveryCache()
        let bad: [Message] = [Message(text: "not json"), Message(json: ["protocol": "discovery"]), Message(bytes: [0xFF]),
                              Message(bytes: []), Message(text: String(repeating: "[", count: 10_000))]
        for _ in 0..<3 {
            for m in bad {
                guard case .failure = cache.parse(m) else { Issue.record("accepted \(m)"); return }
            }
        }
        #expect(cache.count == 0)
        #expect(cache.storedBytes == 0)
    }

    @Test func boundedByTheBytesItHolds() throws {
        let one = Discovery.message(for: participant("p-100", role: "p")).count + DiscoveryCache.overhead
        var cache = DiscoveryCache(limit: one * 10 + one / 2)
        for i in 0..<25 {
            let p = participant("p-\(100 + i)", role: "p")  // ids of the same length: messages of the same size
            #expect(try cache.parse(Discovery.message(for: p)).get() == p)
            #expect(cache.storedBytes <= cache.limit)
        }
        #expect(cache.count == 5)  // started afresh after 10 and after 20
        // A message larger than the whole cache is parsed and not kept.
        var small = DiscoveryCache(limit: 64)
        let p = participant("big", role: "big")
        #expect(try small.parse(Discovery.message(for: p)).get() == p)
        #expect(small.count == 0)
    }

    /// Each participant's message keeps its place: the table grows before one would push out another, and a second
    /// round of the same messages hands back the very definitions of the first (nothing parsed again).
    @Test func aThousandParticipantsAllStayCached() throws {
        var cache = DiscoveryCache()
        let messages = (0..<1000).map { Discovery.message(for: participant("p-\($0)-x", role: "p-\($0)")) }
        let first = try messages.map { try cache.parse($0).get() }
        #expect(cache.count == 1000)
        for (m, d) in zip(messages, first) {
            #expect(try cache.parse(Message(bytes: Array(m.bytes))).get().isSameStorage(d))
        }
        #expect(cache.count == 1000)
    }

    /// The table never grows past what the byte limit lets it hold, however many distinct messages come.
    @Test func aFloodOfDistinctMessagesGrowsTheTableOnlyToTheLimit() throws {
        let limit = 64 * DiscoveryCache.overhead
        var cache = DiscoveryCache(limit: limit)
        for i in 0..<5000 {
            let p = participant("f-\(i)", role: "f")
            #expect(try cache.parse(Discovery.message(for: p)).get() == p)
        }
        #expect(cache.storedBytes <= limit)
        #expect(cache.capacity <= 2 * (limit / DiscoveryCache.overhead))
        #expect(cache.count > 0)
    }
}

@Suite struct FoldHashTests {
    func hash(_ pieces: [[UInt8]]) -> UInt64 {
        var h = FoldHash()
        for p in pieces { p.withUnsafeBytes { h.combine($0) } }
        return h.finalize()
    }

    @Test func piecesHashAsTheRunTheyForm() {
        let bytes = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let whole = hash([bytes])
        for cut in [0, 1, 7, 15, 16, 17, 31, 32, 33, 99, 100] {
            #expect(hash([Array(bytes[..<cut]), Array(bytes[cut...])]) == whole, "cut at \(cut)")
        }
        #expect(hash([Array(bytes[..<5]), [], Array(bytes[5..<40]), Array(bytes[40...])]) == whole)
    }

    @Test func everyByteAndTheLengthCount() {
        let bytes = [UInt8](repeating: 0x61, count: 70)
        let base = hash([bytes])
        var seen: Set<UInt64> = [base]
        for i in bytes.indices {
            var b = bytes
            b[i] ^= 1
            seen.insert(hash([b]))
        }
        #expect(seen.count == bytes.count + 1)
        // Zero bytes at the end are not padding: "ab" and "ab\0" differ, as do the empty run and one zero byte.
        #expect(hash([Array("ab".utf8)]) != hash([Array("ab".utf8) + [0]]))
        #expect(hash([[]]) != hash([[0]]))
    }
}
