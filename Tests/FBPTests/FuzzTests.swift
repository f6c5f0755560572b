import Testing
import TestSupport
@testable import FBP
import MsgFlo

/// Deterministic PRNG (SplitMix64) so failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Pieces the grammar cares about, so random text reaches deep into the parser.
let fuzzTokens: [String] = [
    "a", "b", "Read", "_x", "n-1", "true", "null", "(", ")", "(A)", "(core/Out)", "(A:x=1,y=2)", "(:main)", "()",
    "IN", "OUT", "in[0]", "OUT[12]", "[", "]", " ", "  ", "->", "-", ">", ",", "#", "# @name X", "# @runtime js",
    "\n", "\r\n", "\r", "\t", "'", "'iip'", "'a\\'b'", "\\", "\"", "\"s\"", "{", "}", "{\"k\":1}", "[1,2]", "-3.5e2",
    "0", ":", ".", "INPORT=", "OUTPORT=", "INPORT=a.IN:X", "OUTPORT=b.OUT:Y", "DEFAULT_INPORT=", "DEFAULT_OUTPORT=D",
    "EXPORT=", "é", "\u{2028}", "😀", "\u{0}", "=", "@",
]

func randomText(_ rng: inout SplitMix, maxTokens: Int) -> String {
    var s = ""
    for _ in 0..<Int.random(in: 0...maxTokens, using: &rng) {
        if Int.random(in: 0..<10, using: &rng) == 0 {
            s.unicodeScalars.append(Unicode.Scalar(UInt8.random(in: 0...127, using: &rng)))
        } else {
            s += fuzzTokens.randomElement(using: &rng)!
        }
    }
    return s
}

func mutate(_ text: String, _ rng: inout SplitMix) -> String {
    var u = Array(text.unicodeScalars)
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
        let pos = u.isEmpty ? 0 : Int.random(in: 0...u.count, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0 where pos < u.count: u.remove(at: pos)
        case 1: u.insert(contentsOf: fuzzTokens.randomElement(using: &rng)!.unicodeScalars, at: pos)
        case 2 where pos < u.count: u[pos] = Unicode.Scalar(UInt8.random(in: 32...126, using: &rng))
        default:
            if !u.isEmpty {
                let a = Int.random(in: 0..<u.count, using: &rng)
                let b = min(u.count, a + Int.random(in: 1...20, using: &rng))
                u.insert(contentsOf: u[a..<b], at: pos)
            }
        }
    }
    var s = ""
    s.unicodeScalars.append(contentsOf: u)
    return s
}

/// The JSON text `FBP.read(…).writeJSON` writes (nil if parsing throws).
func directJSON(_ text: String, _ options: ParseOptions, indent: Int = 2, newline: Bool = false) -> [UInt8]? {
    var text = text
    return text.withUTF8 { buf in
        guard let parsed = try? FBP.read(utf8: buf, options: options) else { return nil }
        var out: [UInt8] = []
        parsed.writeJSON(indent: indent, newline: newline) { out.append(contentsOf: $0) }
        return out
    }
}

/// Parsing either succeeds or throws an FBPError with a location; a success round-trips.
func checkInvariants(_ text: String, caseSensitive: Bool) {
    let options = ParseOptions(caseSensitive: caseSensitive)
    do {
        let r = try FBP.parse(text, options: options)
        for w in r.warnings { #expect(w.location != nil, "warning without location for \(text.debugDescription)") }
        // the JSON written straight from the parser's records is the graph's JSON, byte for byte
        #expect(directJSON(text, options, indent: 2) == r.graph.jsonBytes(), "direct JSON of \(text.debugDescription)")
        #expect(directJSON(text, options, indent: 0) == r.graph.jsonBytes(indent: 0), "direct JSON of \(text.debugDescription)")
        // JSON write/read round trip
        let back = try Graph(jsonText: r.graph.jsonText())
        #expect(back.processes.keys == r.graph.processes.keys)
        #expect(back.connections.count == r.graph.connections.count)
        // serialize → parse gives the same graph (every valid parse result is expressible)
        let s = FBP.serialize(r.graph)
        let again = try FBP.parse(s.text, options: options).graph
        #expect(again == r.graph, "round trip of \(text.debugDescription) via \(s.text.debugDescription)")
    } catch let e as FBPError {
        #expect(e.location != nil || e.kind == .graph, "error without location for \(text.debugDescription): \(e)")
        #expect(!e.message.isEmpty)
    } catch {
        Issue.record("unexpected error type \(error) for \(text.debugDescription)")
    }
}

@Suite("Fuzz and properties", .offThePool)
struct FuzzTests {
    @Test("random token soup never crashes; results round-trip")
    func randomInputs() {
        var rng = SplitMix(state: 0xF00D)
        for i in 0..<1500 {
            checkInvariants(randomText(&rng, maxTokens: 30), caseSensitive: i % 2 == 0)
        }
    }

    @Test("mutated conformance inputs never crash; results round-trip")
    func mutatedInputs() {
        var rng = SplitMix(state: 0xBEEF)
        let seeds = conformanceCases.map(\.input) + ["a(A) -> b(B)", "'x' -> IN a(A:x=1) OUT[1] -> IN[0] b(B)"]
        for i in 0..<1500 {
            checkInvariants(mutate(seeds[i % seeds.count], &rng), caseSensitive: i % 3 == 0)
        }
    }

    @Test("random valid graphs round-trip through .fbp and JSON")
    func generatedGraphs() throws {
        var rng = SplitMix(state: 42)
        let comps = ["A", "core/B", "x-y/Z_1", "", "9lives"]
        let ports = ["IN", "out", "Data.x", "_p"]
        for _ in 0..<200 {
            var lines: [String] = []
            let count = Int.random(in: 1...8, using: &rng)
            for k in 0..<count {
                let c = comps.randomElement(using: &rng)!
                lines.append("n\(k)(\(c.isEmpty ? "C" : c))")
            }
            for _ in 0..<Int.random(in: 0...10, using: &rng) {
                let a = Int.random(in: 0..<count, using: &rng), b = Int.random(in: 0..<count, using: &rng)
                let sp = ports.randomElement(using: &rng)! + (Bool.random(using: &rng) ? "[\(Int.random(in: 0...9, using: &rng))]" : "")
                let tp = ports.randomElement(using: &rng)!
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: lines.append("n\(a) \(sp) -> \(tp) n\(b)")
                case 1: lines.append("'v\\'\"\\\\\(a)' -> \(tp) n\(b)")
                default: lines.append("{\"n\": \(a), \"s\": \"\\u0001\\\"\"} -> \(tp) n\(b)")
                }
            }
            let text = lines.joined(separator: Bool.random(using: &rng) ? "\n" : ", ")
            checkInvariants(text, caseSensitive: Bool.random(using: &rng))
            checkInvariants(text, caseSensitive: false)
        }
    }
}

@Suite("UTF-8 input", .offThePool)
struct UTF8Tests {
    func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBufferPointer { FBP.isValidUTF8($0) } }
    func keptByString(_ bytes: [UInt8]) -> Bool { Array(String(decoding: bytes, as: UTF8.self).utf8) == bytes }

    @Test("isValidUTF8 agrees with String(decoding:) on edge cases")
    func edgeCases() {
        let cases: [[UInt8]] = [
            [], [0x41], [0x7F], [0x80], [0xC0, 0x80], [0xC1, 0xBF], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0x9F, 0xBF], [0xE0, 0xA0, 0x80],
            [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80],
            [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xE2, 0x80], [0xF0, 0x9F, 0x98],
            Array("a(A) -> b(B) é 😀 \u{2028}".utf8), Array("12345678é".utf8), Array("1234567\u{FFFF}".utf8),
        ]
        for c in cases { #expect(valid(c) == keptByString(c), "\(c)") }
    }

    @Test("isValidUTF8 agrees with String(decoding:) on random bytes")
    func randomBytes() {
        var rng = SplitMix(state: 7)
        let pieces: [[UInt8]] = [[0x41], [0x20, 0x2D, 0x3E], [0xC3, 0xA9], [0xE2, 0x80, 0xA8], [0xF0, 0x9F, 0x98, 0x80], Array("abcdefgh".utf8)]
        for _ in 0..<20_000 {
            var b: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                if Int.random(in: 0..<6, using: &rng) == 0 {
                    b.append(UInt8.random(in: 0...255, using: &rng))
                } else {
                    b += pieces.randomElement(using: &rng)!
                }
            }
            #expect(valid(b) == keptByString(b), "\(b)")
        }
    }

    @Test("invalid UTF-8 is read as U+FFFD, like a String would be")
    func repaired() throws {
        let bytes: [UInt8] = Array("'a".utf8) + [0xFF] + Array("b' -> IN x(X)".utf8)
        let r = try bytes.withUnsafeBufferPointer { buf in
            try FBP.withValidUTF8(buf) { try FBP.parse(utf8: $0) }
        }
        #expect(r.graph.connections.first?.data == .string("a\u{FFFD}b"))
    }
}

@Suite("Large inputs", .offThePool)
struct LargeInputTests {
    @Test("a 1,000,000-line file parses (linear time, no stack growth)")
    func millionLines() throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(6_000_000)
        let a = Array("a(A) -> b(B)\n".utf8), c = Array("# c\n".utf8), blank: [UInt8] = [10]
        for i in 0..<1_000_000 {
            switch i % 20 {
            case 0: bytes += a
            case 1: bytes += c
            default: bytes += blank
            }
        }
        let r = try bytes.withUnsafeBufferPointer { try FBP.parse(utf8: $0, options: ParseOptions(caseSensitive: true)) }
        #expect(r.graph.connections.count == 50_000)
        #expect(r.graph.processes.count == 2)
    }

    @Test("a big generated graph: the direct JSON (in several chunks) is the graph's JSON")
    func bigGraphDirectJSON() throws {
        var rng = SplitMix(state: 3)
        var lines = ["# @runtime noflo-nodejs", "INPORT=n0.IN:INPUT", "OUTPORT=n1.OUT:OUTPUT"]
        let count = 3000
        for i in 0..<count {
            let decl = i % 7 == 0 ? "n\(i)(core/C\(i % 5):x=\(i),y=1)" : "n\(i)(core/C\(i % 5))"
            lines.append("\(decl) OUT[\(i % 3)] -> IN n\(i + 1)")
        }
        lines.append("n\(count)(End)")
        for k in 0..<2000 {
            let a = Int.random(in: 0...count, using: &rng), b = Int.random(in: 0...count, using: &rng)
            switch k % 4 {
            case 0: lines.append("'v\(k)' -> DATA n\(b)")
            case 1: lines.append("{\"k\": \(k), \"s\": \"\\u0001\"} -> OPTIONS n\(b)")
            default: lines.append("n\(a) Out -> in[\(k % 2)] n\(b)")
            }
        }
        let text = lines.joined(separator: "\n")
        for cs in [false, true] {
            let options = ParseOptions(caseSensitive: cs)
            let g = try FBP.parse(text, options: options).graph
            let expected = g.jsonBytes()
            #expect(expected.count > 3 << 18)  // more than three chunks
            #expect(directJSON(text, options) == expected)
            #expect(directJSON(text, options, newline: true) == expected + [10])
        }
    }

    @Test("a 100,000-element chain parses without recursion")
    func longChain() throws {
        var s = "a(A)"
        s.reserveCapacity(1_600_000)
        for i in 0..<100_000 { s += " -> IN n\(i)(C) OUT" }
        s += " -> IN z(Z)"
        let r = try parse(s)
        #expect(r.graph.connections.count == 100_001)
        #expect(r.graph.processes.count == 100_002)
    }

    @Test("a chain that must backtrack all the way stays linear")
    func backtrackingChain() throws {
        // every element parses as a source, the last one fails: each element is retried once
        var s = ""
        for i in 0..<50_000 { s += "n\(i) OUT -> " }
        s += "'x'"
        let e = try #require(parseError(s))
        #expect(e.kind == .syntax)
    }

    @Test("deeply nested JSON IIPs do not exhaust the stack")
    func deepJSON() throws {
        let ok = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000) + " -> IN a(A)"
        #expect(try parse(ok).graph.connections.count == 1)
        let depth = 100_000
        let s = String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + " -> IN a(A)"
        let e = try #require(parseError(s))
        #expect(e.message.contains("nested more than 1000 levels"))
        #expect(e.location?.column == 1001)
        #expect(throws: FBPError.self) { try JSONValue.parse(String(repeating: "{\"a\":", count: depth)) }
    }
}
