/// A quick hash of a run of bytes, seeded at random once per process: 16 bytes at a time, each pair of words mixed
/// by one full-width multiplication whose halves are folded together.
///
/// Not a flood-proof hash (SipHash, Swift's `Hasher`, is that): use it only where the worst case does not rest on
/// it, as in ``DiscoveryCache``, whose lookups compare a bounded number of entries whatever the hashes. There it
/// costs a fraction of what `Hasher` costs for a discovery message's few hundred bytes.
///
/// The bytes may come in several pieces: the hash is that of the run they form.
struct FoldHash {
    /// The process's seed.
    private static let seed: (UInt64, UInt64) = {
        var g = SystemRandomNumberGenerator()
        return (g.next(), g.next())
    }()

    private let s0: UInt64
    private let s1: UInt64
    private var state: UInt64
    private var length: UInt64 = 0
    /// Bytes of an unfinished 16-byte block (`stashed` of them).
    private var stash: (UInt64, UInt64) = (0, 0)
    private var stashed = 0

    init() {
        (s0, s1) = Self.seed
        state = s1
    }

    @inline(__always)
    private static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let m = a.multipliedFullWidth(by: b)
        return m.high ^ m.low
    }

    /// One 16-byte block into the state. The two words go into different sides of the multiplication with
    /// different secrets (the state carries the second): were both sides keyed alike, swapping the words would
    /// swap the factors and leave the product as it was.
    @inline(__always)
    private mutating func block(_ a: UInt64, _ b: UInt64) {
        state = Self.fold(a ^ s0, b ^ state)
    }

    mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        length &+= UInt64(n)
        if stashed > 0 {
            let take = min(16 - stashed, n), used = stashed
            withUnsafeMutableBytes(of: &stash) { s in
                (s.baseAddress! + used).copyMemory(from: p, byteCount: take)
            }
            stashed += take
            p += take
            n -= take
            guard stashed == 16 else { return }
            block(stash.0, stash.1)
            stashed = 0
        }
        while n >= 16 {
            block(p.loadUnaligned(as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            p += 16
            n -= 16
        }
        if n > 0 {
            stash = (0, 0)
            withUnsafeMutableBytes(of: &stash) { s in s.baseAddress!.copyMemory(from: p, byteCount: n) }
            stashed = n
        }
    }

    consuming func finalize() -> UInt64 {
        if stashed > 0 {
            // The unused bytes of the last block are zero: the length below tells "ab" from "ab\0".
            let used = stashed
            withUnsafeMutableBytes(of: &stash) { s in
                _ = (s.baseAddress! + used).initializeMemory(as: UInt8.self, repeating: 0, count: 16 - used)
            }
            block(stash.0, stash.1)
        }
        return Self.fold(state ^ s1, length ^ s0)
    }
}
