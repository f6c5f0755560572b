import Testing
@testable import MsgFlo

/// `isEmpty` decides whether a send carries properties at all, so it must see every field.
@Suite struct MessagePropertiesEmptyTests {
    @Test func anyOneFieldMakesThePropertiesNonEmpty() {
        #expect(MessageProperties().isEmpty)
        let single: [MessageProperties] = [
            MessageProperties(correlationID: ""), MessageProperties(replyTo: "r"), MessageProperties(messageID: "m"),
            MessageProperties(timestamp: 0), MessageProperties(contentType: "text/plain"),
            MessageProperties(headers: ["x": .int(1)]), MessageProperties(priority: 0),
            MessageProperties(expirationMilliseconds: 0), MessageProperties(persistent: false),
        ]
        // One case per stored field: a field added later must be added here (and to isEmpty).
        #expect(single.count == Mirror(reflecting: MessageProperties()).children.count)
        for p in single { #expect(!p.isEmpty, "\(p)") }
    }
}
