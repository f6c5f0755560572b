import Testing
import TestSupport
@testable import FBP
import MsgFlo

/// No control character (but tab) and no line separator: what may go to a terminal as one line.
func isOneSafeLine(_ s: String) -> Bool {
    !s.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\t") || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" }
}

@Suite("Port indexes as the reference keeps them")
struct PortIndexTests {
    @Test("an index past Int32 is kept, not clamped")
    func pastInt32() throws {
        let g = try parse("a(A) OUT[2147483648] -> IN[4294967296] b(B)", cs: false).graph
        #expect(g.connections[0].src?.index == 2_147_483_648)
        #expect(g.connections[0].tgt.index == 4_294_967_296)
        let json = try #require(directJSON("a(A) OUT[2147483648] -> IN b(B)", ParseOptions(), indent: 0))
        #expect(String(decoding: json, as: UTF8.self).contains("\"index\":2147483648"))
        #expect(g.jsonText(indent: 0).contains("\"index\":2147483648"))
    }

    @Test("up to 2^53 - 1 round-trips through JSON and .fbp; past it is an error, never a silent change")
    func largest() throws {
        let g = try parse("a(A) OUT[9007199254740991] -> IN b(B)").graph
        #expect(g.connections[0].src?.index == 9_007_199_254_740_991)
        #expect(try Graph(jsonText: g.jsonText()) == g)
        #expect(try parse(FBP.serialize(g).text).graph == g)
        for digits in ["9007199254740992", "99999999999999999999", String(repeating: "9", count: 100_000)] {
            let e = try #require(parseError("a(A) OUT[\(digits)] -> IN b(B)"))
            #expect(e.kind == .syntax)
            #expect(e.message.contains("is too large"))
            #expect(e.message.utf8.count < 300)
            #expect(e.location?.line == 1 && e.location?.column == 10)
        }
        // an index on a port the reference drops is not looked at (but warned about)
        #expect(try parse("IN[99999999999999999999] a(A) OUT -> IN b(B)").warnings.count == 1)
    }
}

@Suite("JSON keys compared by code points, as JavaScript does")
struct CodePointKeyTests {
    @Test("canonically equal keys with different code points are different keys")
    func canonicallyEqualKeys() throws {
        for (k1, k2) in [("\u{2126}", "\u{3A9}"), ("\u{E9}", "e\u{301}")] {
            #expect(k1 == k2)  // Swift's String == says these are equal
            let r = try parse("{\"\(k1)\":1,\"\(k2)\":2} -> IN a(A)")
            let o = try #require(r.graph.connections[0].data?.objectValue)
            #expect(o.count == 2)
            #expect(o.keys.map { Array($0.unicodeScalars) } == [Array(k1.unicodeScalars), Array(k2.unicodeScalars)])
            #expect(o[k1] == 1 && o[k2] == 2)
            #expect(r.warnings.isEmpty, "\(r.warnings)")
            #expect(JSONValue.string(k1) != JSONValue.string(k2))
            // the same key twice is still one key, with a warning
            let r2 = try parse("{\"\(k1)\":1,\"\(k1)\":2} -> IN a(A)")
            #expect(r2.graph.connections[0].data?.objectValue?.count == 1)
            #expect(r2.warnings.count == 1)
        }
    }

    @Test("process names of a JSON graph too")
    func graphKeys() throws {
        let g = try Graph(jsonText: "{\"processes\": {\"\u{E9}\": {\"component\": \"A\"}, \"e\u{301}\": {\"component\": \"B\"}}}")
        #expect(g.processes.count == 2)
        #expect(g.processes["\u{E9}"]?.component == "A")
        #expect(g.processes["e\u{301}"]?.component == "B")
        let text = FBP.serialize(g).text
        #expect(try parse(text).graph.processes.count == 2, "\(text)")
    }
}

@Suite("Warnings and errors cost O(1) each", .offThePool)
struct DiagnosticCostTests {
    /// Checks the cap: `limit` warnings, one that counts the rest, bounded text.
    func expectCapped(_ r: ParseResult, total: Int, limit: Int = 100) {
        #expect(r.warnings.count == limit + 1)
        #expect(r.omittedWarnings == total - limit)
        #expect(r.warnings.last?.message == "\(total - limit) more warnings not shown (the first \(limit) are)")
        #expect(r.warnings.allSatisfy { $0.location != nil })
        #expect(r.warnings.map(\.description.utf8.count).reduce(0, +) < (limit + 1) * 400)
    }

    @Test("repeated metadata keys on one long line")
    func metadataKeys() throws {
        let n = 20_000
        let text = "a(A:" + String(repeating: "k=v,", count: n) + "x=1)"
        let r = try parse(text)
        expectCapped(r, total: n - 1)
        #expect(r.graph.processes["a"]?.metadata?.count == 2)
        // the locations are those of the items, counted in one pass
        for (i, w) in r.warnings.prefix(100).enumerated() {
            #expect(w.location == SourceLocation(offset: 8 + 4 * i, line: 1, column: 9 + 4 * i))
        }
        #expect(r.warnings[100].location?.column == 9 + 4 * 100)
    }

    @Test("juxtaposed statements on one long line")
    func juxtaposed() throws {
        let n = 100_000
        let r = try parse("a(A) " + String(repeating: "a ", count: n))
        expectCapped(r, total: n / 2)  // "a a" is a port and a node
        #expect(r.warnings[0].location?.column == 6)
    }

    @Test("repeated JSON keys and lone surrogates in one IIP")
    func jsonNotes() throws {
        let n = 20_000
        let keys = "{" + Array(repeating: "\"k\":1", count: n).joined(separator: ",") + "} -> IN a(A)"
        expectCapped(try parse(keys), total: n - 1)
        let surrogates = "\"" + String(repeating: "\\ud800", count: n) + "\" -> IN a(A)"
        let r = try parse(surrogates)
        expectCapped(r, total: n)
        #expect(r.graph.connections[0].data == .string(String(repeating: "\u{FFFD}", count: n)))
    }

    @Test("warnings of the parser and of JSON values are merged in text order under one cap")
    func merged() throws {
        var lines: [String] = []
        for i in 0..<30 {
            lines.append("{\"k\":1,\"k\":2} -> IN a\(i)(A)")  // a JSON note
            lines.append("x\(i)")  // a parser note
        }
        let r = try parse(lines.joined(separator: "\n"), validate: true)
        #expect(r.warnings.count == 60 && r.omittedWarnings == 0)
        #expect(r.warnings.map { $0.location!.line } == Array(1...60))
        let capped = try FBP.parse(lines.joined(separator: "\n"), options: ParseOptions(warningLimit: 7))
        #expect(capped.warnings.count == 8 && capped.omittedWarnings == 53)
        #expect(capped.warnings.prefix(7).map { $0.location!.line } == Array(1...7))
        #expect(capped.warnings[7].location?.line == 8)
        let none = try FBP.parse(lines.joined(separator: "\n"), options: ParseOptions(warningLimit: 0))
        #expect(none.warnings.count == 1 && none.omittedWarnings == 60)
        #expect(none.warnings[0].message == "60 more warnings not shown (the first 0 are)")
    }

    @Test("warnings quote at most a few dozen characters of what they cite")
    func quotesAreCut() throws {
        let long = String(repeating: "n", count: 100_000)
        let r = try parse("a(A) \(long)\na(A:\(long)=1=2)\n'\(long)' -> '\(long)' -> IN a(A)")
        #expect(r.warnings.count == 3)
        for w in r.warnings {
            #expect(w.message.utf8.count < 400, "\(w.message.prefix(200))")
            #expect(w.message.contains("…"))
        }
    }

    @Test("the serializer's warnings are capped too")
    func serializer() {
        var g = Graph()
        for i in 0..<1000 { g.processes["bad name \(i)"] = Process(component: "C", metadata: nil) }
        let s = FBP.serialize(g)
        #expect(s.warnings.count == 101)
        #expect(s.warnings.last?.message == "900 more warnings not shown (the first 100 are)")
    }
}

@Suite("Error lines: one line that stands alone, and a window of the source", .offThePool)
struct ErrorDisplayTests {
    @Test("an error on a very long line shows a window of it")
    func longLine() throws {
        let n = 100_000
        let text = "a(A) -> IN b(B) " + String(repeating: "x ", count: n / 2) + "-> ,,, " + String(repeating: "y ", count: n / 2)
        let e = try #require(parseError(text))
        let x = try #require(e.excerpt)
        #expect(x.text.hasPrefix("…") && x.text.hasSuffix("…"))
        #expect(x.text.utf8.count <= 2 * Diagnostics.windowBytes + 8)
        #expect(e.sourceLine == x.text)
        #expect(x.caretLine == String(repeating: " ", count: x.caretColumn) + "^")
        // the caret is under the character the error is at
        let scalars = Array(x.text.unicodeScalars)
        #expect(scalars[x.caretColumn] == ",")
        #expect(e.caretDisplay == x.text + "\n" + x.caretLine)
        #expect(e.caretDisplay.utf8.count < 300)
        #expect(e.summary(file: "g.fbp") == "g.fbp:\(e.location!.line):\(e.location!.column): \(e.message)")
    }

    @Test("short lines are shown whole, as before")
    func shortLine() throws {
        let e = try #require(parseError("a(A) -> b(B)\n'foo' --> Display(Output)"))
        #expect(e.caretDisplay == "'foo' --> Display(Output)\n      ^")
        #expect(e.excerpt?.caretColumn == 6)
        #expect(e.summary(file: "g.fbp") == "g.fbp:2:7: Expected \" \" or \"->\" but \"-\" found.")
        #expect(e.summary(file: nil) == e.description)
        #expect(e.summary(file: "g.fbp", label: "error") == "g.fbp:2:7: error: Expected \" \" or \"->\" but \"-\" found.")
        #expect(e.summary(file: nil, label: "error") == "2:7: error: Expected \" \" or \"->\" but \"-\" found.")
        // at the end of the input
        let e2 = try #require(parseError("a(A) -> 'x"))
        #expect(e2.caretDisplay == "a(A) -> 'x\n          ^")
        // tabs stay tabs under tabs; a wide character takes two columns
        let e3 = try #require(parseError("'\t漢' -> \t"))
        #expect(e3.excerpt?.caretLine == " \t" + String(repeating: " ", count: 7) + "\t^")  // (at the end, after the tab)
    }

    @Test("raw bytes are escaped, in the line and in the window")
    func escaped() throws {
        let e = try #require(parseError("'\u{1B}[2J' -> IN nowhere"))
        #expect(e.kind == .validation)
        #expect(e.message.contains("\u{1B}"))  // the reference's text
        let line = e.summary(file: "evil\u{1B}]0;x\u{7}.fbp")
        #expect(isOneSafeLine(line))
        #expect(line.contains("\\x1B[2J"))
        #expect(line.hasPrefix("evil\\x1B]0;x\\x07.fbp:1:"))
        let e2 = try #require(parseError("a(A) -> \u{1B}[31m\u{2028}"))
        #expect(isOneSafeLine(e2.summary(file: "g.fbp")))
        #expect(e2.caretDisplay.split(separator: "\n").allSatisfy { isOneSafeLine(String($0)) })
        #expect(e2.excerpt?.text == "a(A) -> \\x1B[31m")
        #expect(e2.excerpt?.caretColumn == 8)
        let w = Warning(message: "a\u{1B}b\nc", location: SourceLocation(offset: 0, line: 1, column: 1))
        #expect(w.summary(file: "f") == "f:1:1: warning: a\\x1Bb\\nc")
        #expect(Warning(message: "m").summary(file: "f") == "f: warning: m")
    }

    @Test("a validation error quotes at most a window of a huge IIP")
    func hugeIIP() throws {
        let e = try #require(parseError("'" + String(repeating: "z", count: 1_000_000) + "' -> IN nowhere"))
        #expect(e.message.hasPrefix("IIP containing \"zzz"))
        #expect(e.message.hasSuffix("…\" is connected to an undefined target node \"nowhere\""))
        #expect(e.message.utf8.count < 200)
        #expect(e.caretDisplay.utf8.count < 300)
    }

    @Test("errors without a place")
    func noPlace() {
        do {
            _ = try Graph(jsonText: "[]")
            Issue.record("expected an error")
        } catch let e as FBPError {
            #expect(e.excerpt == nil && e.caretDisplay.isEmpty)
            #expect(e.summary(file: "g.json") == "g.json: " + e.message)
        } catch {
            Issue.record("\(error)")
        }
    }
}
