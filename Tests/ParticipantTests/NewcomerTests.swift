import MsgFlo
@testable import MsgFloParticipant
import Testing

@Suite("What a participant author meets first")
struct NewcomerParticipantTests {
    @Test("ids are <role>-<8 hex digits>, zero padded, however small the random number")
    func idsHaveEightHexDigits() {
        for _ in 0..<2000 {
            let id = RunningParticipant.randomID(role: "shout")
            #expect(id.hasPrefix("shout-"))
            let hex = id.dropFirst("shout-".count)
            #expect(hex.count == 8 && hex.allSatisfy { $0.isHexDigit && !$0.isUppercase }, "\(id)")
        }
    }

    @Test("a number sent as text reads as a number: .fbp IIPs are strings")
    func numbersAsText() {
        #expect(Message(json: .string("25")).integer == 25)
        #expect(Message(json: .int(25)).integer == 25)
        #expect(Message(text: " 2.5 ").number == 2.5)
        #expect(Message(json: .string("-1e3")).number == -1000)
        #expect(Message(json: .string("25.0")).integer == 25)
        #expect(Message(json: .string("2.5")).integer == nil)
        #expect(Message(json: .string("nan")).number == nil)
        #expect(Message(json: .string("inf")).number == nil)
        #expect(Message(json: .string("1e999")).number == nil)
        #expect(Message(json: .string("")).number == nil)
        #expect(Message(json: .string("12abc")).number == nil)
        #expect(Message(json: .bool(true)).number == nil)
        #expect(Message(bytes: [0xff, 0xfe]).number == nil)
        #expect(JSONValue.string(String(repeating: "1", count: 100)).number == nil)
    }
}
