import Glibc
import MsgFlo

/// Discovery messages already parsed, by their exact bytes.
///
/// Participants re-announce themselves every few seconds with the same bytes (the same definition serialised the
/// same way), so a busy `fbp` is mostly messages seen before. Those are looked up (a hash of the bytes and one
/// comparison) instead of parsed again, and the definition handed on is the very one registered before, which the
/// registry recognises as unchanged at the cost of a pointer comparison.
///
/// The table is set-associative, as a CPU's cache is: a message's hash picks one set of ``ways`` entries, and it can
/// only be there. A lookup therefore reads at most that many hashes and compares the bytes of those that match,
/// whatever the messages that came before: crafted messages cannot build long chains to walk, so the hash need not
/// be a flood-proof one, only quick and seeded per process (``FoldHash``). The most they can do is push other
/// messages out of a set, which costs each of those one parse the next time, as their own messages do. The table
/// doubles when it is half full or a message finds its set full (up to what `limit` lets it hold), so a participant's
/// message is pushed out by another only once the cache is as large as the limit allows.
///
/// Only messages that parse are kept; bad ones are parsed (and refused) each time. The cache is bounded by the bytes
/// it holds: when the next message would pass `limit`, it starts afresh (a flood of distinct messages costs one
/// parse each, as without the cache).
package struct DiscoveryCache: Sendable {
    /// A message's bytes but for the part in `skip` (its timestamp field; empty for none): hashed and compared in
    /// place, so a lookup copies nothing.
    struct Key: Equatable, Sendable {
        let bytes: [UInt8]
        let skip: Range<Int>
        /// The counted bytes' ``FoldHash``, worked out once; never 0 (0 marks an empty way). Compared before the
        /// bytes: a lookup passing other entries reads only this word of each.
        let digest: UInt64

        init(bytes: [UInt8], skip: Range<Int>? = nil) {
            let skip = skip ?? bytes.count ..< bytes.count
            self.bytes = bytes
            self.skip = skip
            // The two parts hash as the one run of bytes they form.
            digest = bytes.withUnsafeBytes { b in
                var h = FoldHash()
                h.combine(UnsafeRawBufferPointer(rebasing: b[..<skip.lowerBound]))
                h.combine(UnsafeRawBufferPointer(rebasing: b[skip.upperBound...]))
                return h.finalize() | 1
            }
        }

        /// The bytes that count.
        var count: Int { bytes.count - skip.count }

        static func == (a: Key, b: Key) -> Bool {
            guard a.digest == b.digest else { return false }
            let n = a.count
            guard n == b.count else { return false }
            return a.bytes.withUnsafeBytes { x in
                b.bytes.withUnsafeBytes { y in
                    // Walk both in runs that are contiguous in each.
                    var i = 0
                    while i < n {
                        let (pa, la) = a.run(at: i, x)
                        let (pb, lb) = b.run(at: i, y)
                        let l = min(la, lb)
                        if memcmp(pa, pb, l) != 0 { return false }
                        i += l
                    }
                    return true
                }
            }
        }

        /// Where the counted byte `i` is in `buffer` (this key's bytes), and how many counted bytes follow it there
        /// contiguously.
        private func run(at i: Int, _ buffer: UnsafeRawBufferPointer) -> (UnsafeRawPointer, Int) {
            if i < skip.lowerBound { return (buffer.baseAddress! + i, skip.lowerBound - i) }
            let j = i + skip.count
            return (buffer.baseAddress! + j, bytes.count - j)
        }
    }

    struct Entry: Sendable {
        let key: Key
        let definition: ParticipantDefinition
    }

    /// What one kept message is counted as beyond its bytes (the key's and the definition's storage).
    static let overhead = 256
    /// Entries per set: what one lookup may compare at most.
    static let ways = 8
    /// The sets a new cache starts with (it doubles as it fills).
    static let initialSets = 8

    package let limit: Int
    /// Set `s` is ways `s * ways ..< (s + 1) * ways` of both. A digest of 0 is an empty way.
    private var digests: [UInt64]
    private var entries: [Entry?]
    /// Per set, the way to give up next when the set is full (round robin).
    private var victims: [UInt8]
    package private(set) var count = 0
    package private(set) var storedBytes = 0

    /// The broker whose name rules the announced queues must follow (nil: not checked).
    package let wire: WireName.Broker?

    package init(limit: Int = 16 << 20, wire: WireName.Broker? = nil) {
        self.limit = limit
        self.wire = wire
        digests = Array(repeating: 0, count: Self.initialSets * Self.ways)
        entries = Array(repeating: nil, count: Self.initialSets * Self.ways)
        victims = Array(repeating: 0, count: Self.initialSets)
    }

    /// Ways in all (sets × ways).
    package var capacity: Int { digests.count }

    /// The message's definition, parsed now or found from an earlier identical message. Announcements that differ
    /// only in their `timestamp` (ours carry one, and it changes every time) share one entry: the key is the message
    /// without its last `,"timestamp":<digits>`, used only when that field was found to be the payload's timestamp.
    package mutating func parse(_ message: Message) -> Result<ParticipantDefinition, MsgFloError> {
        parse(bytes: message.bytes)
    }

    /// ``parse(_:)`` of a message's bytes (its properties play no part).
    package mutating func parse(bytes: [UInt8]) -> Result<ParticipantDefinition, MsgFloError> {
        let stamp = Self.timestampField(bytes)
        let key = Key(bytes: bytes, skip: stamp?.range)
        if let i = find(key) {
            var d = entries[i].unsafelyUnwrapped.definition
            if let stamp { d.timestamp = stamp.value }
            return .success(d)
        }
        let wire = self.wire
        let result = Result { () throws(MsgFloError) in
            let d = try Discovery.parse(Message(bytes: bytes))
            // A queue the broker cannot take (too long, NUL, …) would fail every binding to it: refused here.
            if let wire { try d.checkWireNames(wire) }
            return d
        }
        if case .success(let d) = result, stamp == nil || d.timestamp == stamp!.value {
            keep(Entry(key: key, definition: d), size: bytes.count + Self.overhead)
        }
        return result
    }

    /// The first way of the set `digest` falls in.
    private func setStart(_ digest: UInt64) -> Int {
        // The high half picks the set (the ways compare the whole digest).
        (Int(truncatingIfNeeded: digest >> 32) & (victims.count - 1)) * Self.ways
    }

    private func find(_ key: Key) -> Int? {
        let start = setStart(key.digest)
        return digests.withUnsafeBufferPointer { d in
            for i in start ..< start + Self.ways where d[i] == key.digest {
                if entries[i].unsafelyUnwrapped.key == key { return i }
            }
            return nil
        }
    }

    private mutating func keep(_ entry: Entry, size: Int) {
        guard size <= limit else { return }
        if storedBytes + size > limit { clear() }
        var start = setStart(entry.key.digest)
        var way = (start ..< start + Self.ways).first { digests[$0] == 0 }
        // Half full, or the entry's set is: twice the sets, up to twice the entries the limit lets it hold.
        if (way == nil || count * 2 >= capacity) && capacity < 2 * (limit / Self.overhead) {
            grow()
            start = setStart(entry.key.digest)
            way = (start ..< start + Self.ways).first { digests[$0] == 0 }
        }
        if way == nil {
            let set = start / Self.ways
            let v = Int(victims[set])
            victims[set] = UInt8((v + 1) % Self.ways)
            way = start + v
            storedBytes -= entries[start + v].unsafelyUnwrapped.key.bytes.count + Self.overhead
            count -= 1
        }
        digests[way!] = entry.key.digest
        entries[way!] = entry
        storedBytes += size
        count += 1
    }

    private mutating func clear() {
        for i in digests.indices { digests[i] = 0 }
        for i in entries.indices { entries[i] = nil }
        count = 0
        storedBytes = 0
    }

    private mutating func grow() {
        let old = entries
        digests = Array(repeating: 0, count: digests.count * 2)
        entries = Array(repeating: nil, count: entries.count * 2)
        victims = Array(repeating: 0, count: victims.count * 2)
        for e in old {
            guard let e else { continue }
            let start = setStart(e.key.digest)
            // Twice the sets: each old set splits in two, so an entry always finds a free way.
            let way = (start ..< start + Self.ways).first { digests[$0] == 0 }!
            digests[way] = e.key.digest
            entries[way] = e
        }
    }

    static let marker = Array(#","timestamp":"#.utf8)
    /// The end of an envelope serialised with sorted keys (the payload then comes before "protocol").
    static let sortedEnvelopeEnd = Array(#"},"protocol":"discovery"}"#.utf8)

    /// Where the payload's closing `}` is when the envelope's serialisation says so: ours put the payload last
    /// (the message ends `}}`), sorted keys put it just before `"protocol"`. Nil for any other ending.
    static func payloadEnd(_ bytes: [UInt8]) -> Int? {
        let n = bytes.count, brace = UInt8(ascii: "}")
        if n >= 2, bytes[n - 1] == brace, bytes[n - 2] == brace { return n - 2 }
        let e = sortedEnvelopeEnd
        if n > e.count, bytes[(n - e.count)...].elementsEqual(e) { return n - e.count }
        return nil
    }

    /// How far from the end the field is looked for when the message ends otherwise.
    static let searchWindow = 128

    /// The announcement's `,"timestamp":<1-15 digits>` (followed by `}`), with its value in seconds, when found.
    ///
    /// Where the payload's end is known (``payloadEnd(_:)``), the field must be its last member, which is where
    /// ours put it: a look at the bytes just before that `}`, nothing searched. Otherwise the last such field in
    /// the last `searchWindow` bytes. A field found elsewhere than in the payload is harmless: ``parse(_:)`` keeps
    /// a message only when the field found is the one it parsed.
    static func timestampField(_ bytes: [UInt8]) -> (range: Range<Int>, value: Double)? {
        let m = marker
        guard bytes.count > m.count + 1, bytes.count <= Discovery.maximumMessageSize else { return nil }
        if let end = payloadEnd(bytes) {
            var j = end
            while j > 0, j > end - 15, bytes[j - 1] >= 48, bytes[j - 1] <= 57 { j -= 1 }
            guard j < end, j >= m.count, bytes[j - m.count ..< j].elementsEqual(m) else { return nil }
            var value = 0.0
            for k in j ..< end { value = value * 10 + Double(bytes[k] - 48) }
            return (j - m.count ..< end, value / 1000)
        }
        var i = bytes.count - m.count - 1
        let stop = max(0, bytes.count - searchWindow)
        while i >= stop {
            if bytes[i] == m[0] && bytes[i + 1] == m[1] && bytes[i ..< i + m.count].elementsEqual(m) {
                var j = i + m.count
                var value = 0.0
                while j < bytes.count, bytes[j] >= 48, bytes[j] <= 57, j - i - m.count < 15 {
                    value = value * 10 + Double(bytes[j] - 48)
                    j += 1
                }
                guard j > i + m.count, j < bytes.count, bytes[j] == UInt8(ascii: "}") else { return nil }
                return (i ..< j, value / 1000)
            }
            i -= 1
        }
        return nil
    }
}
