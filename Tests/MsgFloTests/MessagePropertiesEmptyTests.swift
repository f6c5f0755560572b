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

    /// A message keeps its properties in one shared box (two shared ones for a delivery mode alone): every field
    /// must come back as set, and a change to one copy must not show in another.
    @Test func aMessageKeepsEachFieldAndCopiesStayApart() {
        let single: [MessageProperties] = [
            MessageProperties(), MessageProperties(correlationID: "c"), MessageProperties(replyTo: "r"),
            MessageProperties(messageID: "m"), MessageProperties(timestamp: 7), MessageProperties(contentType: "t"),
            MessageProperties(headers: ["x": .int(1)]), MessageProperties(priority: 3),
            MessageProperties(expirationMilliseconds: 9), MessageProperties(persistent: false),
            MessageProperties(persistent: true), MessageProperties(contentType: "t", persistent: true),
        ]
        for p in single {
            let m = Message(bytes: [1], properties: p)
            #expect(m.properties == p)
            var copy = m
            copy.properties.persistent = !(p.persistent ?? false)
            copy.properties.headers["y"] = .string("z")
            #expect(m.properties == p, "changing a copy changed the original")
            #expect(copy.properties.persistent == !(p.persistent ?? false))
            #expect(copy.properties.headers["y"] == .string("z"))
            var set = Message(bytes: [1])
            set.properties = p
            #expect(set.properties == p)
        }
        // Two messages sent alike with persistent alone, changed apart.
        var a = Message(bytes: [], properties: MessageProperties(persistent: true))
        let b = Message(bytes: [], properties: MessageProperties(persistent: true))
        a.properties.contentType = "x"
        #expect(b.properties == MessageProperties(persistent: true))
        #expect(a.properties == MessageProperties(contentType: "x", persistent: true))
    }
}
