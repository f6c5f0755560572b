import MsgFlo
import Testing
import TestSupport

@Suite struct JSONValueTests {
    @Test func scalarsAndContainers() throws {
        let v = try JSONValue(parsing: #" {"a": [1, -2.5, true, false, null, "x\n\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(v["a"] == [1, -2.5, true, false, nil, "x\né😀"])
        #expect(v["b"] == .object([:]))
    }

    @Test func topLevelScalars() throws {
        #expect(try JSONValue(parsing: "42") == 42)
        #expect(try JSONValue(parsing: "\"hello\"") == "hello")
        #expect(try JSONValue(parsing: "null") == nil)
    }

    @Test func integersStayIntegers() throws {
        #expect(try JSONValue(parsing: "5").serialized == "5")
        #expect(try JSONValue(parsing: "5.5").serialized == "5.5")
        #expect(try JSONValue(parsing: "1e3") == .double(1000))
    }

    @Test func serializeEscapes() {
        let v: JSONValue = ["k": "a\"b\\c\u{01}"]
        #expect(v.serialized == #"{"k":"a\"b\\c\u0001"}"#)
    }

    @Test func roundTrip() throws {
        let text = #"{"a":[1,2.25,"s",null,true],"b":{"c":"d"}}"#
        #expect(try JSONValue(parsing: text).serialized == text)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\":}", "tru", "01", "1.", "\"abc", "[1] x", "{'a':1}", "\"\\ud800\"",
                      "\"\u{01}\"", "-", "nul"])
    func rejectsInvalid(text: String) {
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
        // After ASCII, without escapes (the parser's fast path): a cut sequence, a lone continuation byte.
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: [0x22, 0x61, 0x62, 0xC3, 0x22]) }
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: Array(#"{"ab\#u{80}":1}"#.utf8).map { $0 == 0xC2 ? 0x61 : $0 }) }
    }

    @Test func stringsWithoutEscapes() throws {
        // ASCII, empty, and non-ASCII text with no escapes: each read exactly.
        let v = try JSONValue(parsing: Array(#"{"id":"a-1","":"","名前":"é🙂x","q":"r.IN"}"#.utf8))
        #expect(v == ["id": "a-1", "": "", "名前": "é🙂x", "q": "r.IN"])
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: MsgFloError.self) { try JSONValue(parsing: deep) }
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: Never.self) { try JSONValue(parsing: ok) }
    }

    @Test(.offThePool) func randomBytesNeverCrash() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<64, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? JSONValue(parsing: bytes)
        }
    }

    @Test func messageFallbacks() {
        #expect(Message(text: "hello").json == nil)
        #expect(Message(text: "hello").data == "hello")
        #expect(Message(json: ["a": 1]).data == ["a": 1])
        #expect(Message(bytes: [0xFF, 0x00]).data == nil)
        #expect(Message(bytes: [0xFF, 0x00]).text == nil)
    }
}
