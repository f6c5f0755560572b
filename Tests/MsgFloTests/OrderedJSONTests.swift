import MsgFlo
import Testing

/// The project's one JSON value, parser and printer: key order, hostile input, and numbers printed as JavaScript's
/// `JSON.stringify` prints them (msgflo is Node: graph JSON, the component library and the tools' output must match).
@Suite struct OrderedJSONTests {
    @Test func keysKeepTheirOrderThroughParseAndPrint() throws {
        let text = #"{"z":1,"a":{"y":[2,{"c":3,"b":4}],"x":null},"m":"s"}"#
        let v = try JSONValue(parsing: text)
        #expect(v.serialized == text)
        #expect(JSONWriter.string(v, indent: 0) == text)
        #expect(v.objectValue?.keys == ["z", "a", "m"])
    }

    @Test func duplicateKeysKeepTheFirstPlaceAndTheLastValue() throws {
        // as JSON.parse: {"a":3,"b":2}
        let v = try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#)
        #expect(v.serialized == #"{"a":3,"b":2}"#)
        #expect(v.objectValue?.count == 2)
    }

    @Test func keysAreComparedByScalarsAsJavaScriptDoes() throws {
        // U+2126 OHM SIGN and U+03A9 OMEGA are canonically equivalent in Swift, distinct keys in JavaScript.
        let v = try JSONValue(parsing: "{\"\u{2126}\":1,\"\u{3A9}\":2}")
        #expect(v.objectValue?.count == 2)
        #expect(JSONValue.string("\u{2126}") != JSONValue.string("\u{3A9}"))
    }

    @Test func equalityIgnoresKeyOrderAndNumberForm() throws {
        let a = try JSONValue(parsing: #"{"a":1,"b":[2.0]}"#)
        let b = try JSONValue(parsing: #"{"b":[2],"a":1.0}"#)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(JSONValue.int(5) == .double(5))
        #expect(JSONValue.double(.nan) == .double(.nan))
        #expect(JSONValue.int(1) != .string("1"))
    }

    @Test func depthLimitIsKeptAndCallersMayLowerIt() throws {
        let ok = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        #expect(throws: Never.self) { try JSONValue(parsing: ok) }
        let deep = String(repeating: "[", count: JSONValue.maximumDepth + 1) + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: deep) }
        // a million open brackets: refused at the limit, not a stack overflow
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: String(repeating: "{\"a\":", count: 1_000_000)) }
        let objects = String(repeating: "{\"a\":", count: 257) + "1" + String(repeating: "}", count: 257)
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: objects, maximumDepth: 256) }
        #expect(throws: Never.self) { try JSONValue(parsing: objects, maximumDepth: 257) }
    }

    @Test func hugeNumbers() throws {
        // an integer that fits Int stays exact (a relay passes it through unchanged)
        #expect(try JSONValue(parsing: "9223372036854775807") == .int(Int.max))
        #expect(try JSONValue(parsing: "9007199254740993").serialized == "9007199254740993")
        // past Int: the nearest double, printed as JavaScript prints it
        #expect(try JSONValue(parsing: "123456789012345678901234567890").serialized == "1.2345678901234568e+29")
        // past the double range: Infinity as JSON.parse gives, which JSON.stringify writes as null
        #expect(try JSONValue(parsing: "1e400").serialized == "null")
        #expect(try JSONValue(parsing: "-1e400") == .double(-.infinity))
        #expect(try JSONValue(parsing: "1e-400").serialized == "0")
        // a hundred thousand digits: read, not a hang or a crash
        let long = "1" + String(repeating: "0", count: 100_000)
        #expect(try JSONValue(parsing: long) == .double(.infinity))
        let longFraction = "0." + String(repeating: "3", count: 100_000)
        #expect(try JSONValue(parsing: longFraction).serialized == "0.3333333333333333")
        // JavaScript's String(): integers past 2^53 as the double JavaScript holds
        #expect(JSONValue.int(9_007_199_254_740_993).javaScriptString == "9007199254740992")
    }

    @Test(arguments: [
        [0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3], [0x80],
    ] as [[UInt8]])
    func badUTF8InStringsOrKeysIsRefused(bytes: [UInt8]) {
        let asValue = [UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")]
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: asValue) }
        let asKey = Array("{\"".utf8) + bytes + Array("\":1}".utf8)
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: asKey) }
    }

    @Test func loneSurrogateEscapesAreRefused() throws {
        for text in [#""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, #""\ud800x""#] {
            #expect(throws: MsgFloError.self, "\(text)") { try JSONValue(parsing: text) }
        }
        #expect(try JSONValue(parsing: #""\ud83d\ude00""#) == "😀")
    }

    @Test func errorsSayWhereInBytesAndLines() {
        do {
            _ = try JSONValue(parsing: "{\n  \"a\": 1,\n  \"b\" 2\n}")
            Issue.record("parsed")
        } catch {
            #expect(error.message.contains("expected ':'"))
            #expect(error.message.contains("line 3"))
        }
    }

    // JavaScript: JSON.stringify(x) and String(x) for each double.
    @Test(arguments: [
        (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-1.0, "-1"), (100.0, "100"), (1.5, "1.5"), (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"), (4.35, "4.35"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"), (1.5e300, "1.5e+300"), (1e-6, "0.000001"),
        (1e-7, "1e-7"), (1.23e-18, "1.23e-18"), (-2.5e-8, "-2.5e-8"), (Double.leastNonzeroMagnitude, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"), (9007199254740992.0, "9007199254740992"),
        (9007199254740994.0, "9007199254740994"), (2.0e15 + 0.5, "2000000000000000.5"), (0.000123, "0.000123"),
        (123.456, "123.456"), (1e15, "1000000000000000"), (1e16, "10000000000000000"),
    ] as [(Double, String)])
    func numbersPrintAsJavaScriptPrintsThem(value: Double, js: String) {
        #expect(JSONWriter.string(.double(value), indent: 0) == js)
        #expect(JSONValue.double(value).serialized == js)
        #expect(JSONValue.double(value).javaScriptString == js)
        #expect(JSONWriter.string(.number(value), indent: 0) == js)
        // and they read back as the same double
        #expect((try? JSONValue(parsing: js))?.doubleValue == value)
    }

    @Test func notFiniteNumbersAreNullInJSONAndNamedInStrings() {
        #expect(JSONValue.double(.nan).serialized == "null")
        #expect(JSONValue.double(.infinity).serialized == "null")
        #expect(JSONValue.double(.nan).javaScriptString == "NaN")
        #expect(JSONValue.double(-.infinity).javaScriptString == "-Infinity")
    }

    @Test func terminalSafePrintingEscapesWhatSafeTextEscapesAndStaysTheSameJSON() throws {
        let hostile = "a\u{7F}b\u{85}c\u{202E}d\u{2028}e\u{61C}f\u{1B}[31m"
        let v: JSONValue = ["k\u{202E}": .string(hostile)]
        let safe = v.serialized
        #expect(safe == #"{"k\u202e":"a\u007fb\u0085c\u202ed\u2028e\u061cf\u001b[31m"}"#)
        #expect(try JSONValue(parsing: safe) == v)
        // JSON.stringify escapes C0 only
        let js = JSONWriter.string(v, indent: 0)
        #expect(js == "{\"k\u{202E}\":\"a\u{7F}b\u{85}c\u{202E}d\u{2028}e\u{61C}f\\u001b[31m\"}")
        #expect(try JSONValue(parsing: js) == v)
        // other non-ASCII text is written as it is
        #expect(JSONValue.string("é😀\u{2000}").serialized == "\"é😀\u{2000}\"")
    }

    @Test func prettyPrintingIsJSONStringifysWithAnIndent() {
        let v: JSONValue = ["a": [1, 2], "b": [:], "c": []]
        #expect(JSONWriter.string(v, indent: 2) == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": []\n}")
    }
}
