import Foundation
import Logging
import MsgFlo
import TestSupport
import Testing
@testable import MsgFloCoordinator

/// Dated announcements (docs/protocol.md): never fresher than their timestamp; stale ones are ignored.
@Suite struct AnnouncementTimestampTests {
    func definition(_ id: String, heartbeat: Double? = 10, timestamp: Double?) -> ParticipantDefinition {
        var d = ParticipantDefinition(id: id, role: "r-\(id)", component: "Repeat",
                                      inports: [PortDefinition(id: "in", queue: "r-\(id).IN")],
                                      outports: [PortDefinition(id: "out", queue: "r-\(id).OUT")],
                                      heartbeat: heartbeat)
        d.timestamp = timestamp
        return d
    }

    func coordinator(now: Double) -> Coordinator {
        Coordinator(transport: InMemoryTransport(broker: InMemoryBroker()), logger: testLogger(level: .critical), now: { now })
    }

    @Test func timestampTravelsInMillisecondsAndIsNotPartOfTheIdentity() throws {
        let d = definition("p", timestamp: 1_764_537_600.123)
        let json = d.json
        #expect(json["timestamp"] == .int(1_764_537_600_123))
        let back = try ParticipantDefinition(json: json)
        #expect(back.timestamp == 1_764_537_600.123)
        #expect(back == definition("p", timestamp: 5))
        #expect(back.hashValue == definition("p", timestamp: nil).hashValue)
        #expect(throws: MsgFloError.self) {
            var o = json
            if case .object(var m) = o { m["timestamp"] = "yesterday"; o = .object(m) }
            _ = try ParticipantDefinition(json: o)
        }
    }

    @Test func anAnnouncementOlderThanItsPeriodIsIgnored() async {
        let c = coordinator(now: 10_000)
        await c.handle(discovery: Discovery.message(for: definition("ghost", heartbeat: 10, timestamp: 10_000 - 600)))
        let o = await c.observation
        #expect(o.registry.participants(role: "r-ghost").isEmpty)
        #expect(await c.stale == 1)
    }

    @Test func anAnnouncementIsNeverFresherThanItsTimestampNorThanItsArrival() async {
        let c = coordinator(now: 10_000)
        await c.handle(discovery: Discovery.message(for: definition("old", heartbeat: 10, timestamp: 10_000 - 4)))
        await c.handle(discovery: Discovery.message(for: definition("ahead", heartbeat: 10, timestamp: 10_000 + 3600)))
        await c.handle(discovery: Discovery.message(for: definition("foreign", heartbeat: 10, timestamp: nil)))
        let o = await c.observation
        let old = o.registry.alive(role: "r-old").first?.lastSeen ?? 0
        #expect(abs(old - 9996) < 1e-6, "\(old.bitPattern) \(Double(9996).bitPattern)")
        #expect(o.registry.alive(role: "r-ahead").first?.lastSeen == 10_000)
        #expect(o.registry.alive(role: "r-foreign").first?.lastSeen == 10_000)
    }

    @Test func theParseCacheKeepsOneEntryForAnnouncementsThatDifferOnlyInTheirTimestamp() throws {
        var cache = DiscoveryCache()
        let first = try cache.parse(Discovery.message(for: definition("p", timestamp: 1000.5))).get()
        let second = try cache.parse(Discovery.message(for: definition("p", timestamp: 1027.25))).get()
        #expect(first.timestamp == 1000.5)
        #expect(second.timestamp == 1027.25)
        #expect(first == second)
        #expect(cache.count == 1)
        // A "timestamp" elsewhere than in the payload is not taken for the announcement's.
        let sneaky = Message(bytes: Array(#"{"command":"participant","payload":{"component":"C","id":"x","inports":[],"outports":[],"role":"r"},"protocol":"discovery","z":{"a":1,"timestamp":5}}"#.utf8))
        let parsed = try cache.parse(sneaky).get()
        #expect(parsed.timestamp == nil)
        let again = try cache.parse(sneaky).get()
        #expect(again.timestamp == nil)
        // Keys in another order (msgflo's Node.js participants put "protocol" first): the field is searched for.
        func foreign(_ stamp: Int) -> Message {
            Message(bytes: Array(#"{"protocol":"discovery","command":"participant","payload":{"id":"f","role":"r","component":"C","inports":[],"outports":[],"timestamp":\#(stamp)}}"#.utf8))
        }
        let f1 = try cache.parse(foreign(2_000_000)).get()
        let f2 = try cache.parse(foreign(2_000_500)).get()
        #expect(f1.timestamp == 2000 && f2.timestamp == 2000.5)
        #expect(cache.count == 2)  // "p" and "f" (the sneaky one is parsed each time: its field is not its own)
        // Sorted keys, but a nested "timestamp" ends the payload's last value: not the announcement's.
        let nested = Message(bytes: Array(#"{"command":"participant","payload":{"component":"C","id":"n","inports":[],"outports":[],"role":"r","z":{"timestamp":7}},"protocol":"discovery"}"#.utf8))
        #expect(try cache.parse(nested).get().timestamp == nil)
        #expect(try cache.parse(nested).get().timestamp == nil)
    }

    @Test func statusListeningShowsStaleAnnouncementsAsLost() async throws {
        let broker = InMemoryBroker()
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        try await t.declareDiscoveryQueue()
        let now = Date().timeIntervalSince1970
        try await t.announce(definition("ghost", heartbeat: 5, timestamp: now - 300))
        try await t.announce(definition("live", heartbeat: 600, timestamp: now))   // alive however long a loaded machine takes to listen
        let status = try await StatusClient.listen(t, for: .milliseconds(300))
        let rows = Dictionary(uniqueKeysWithValues: status.rows.map { ($0.role, $0) })
        #expect(rows["r-ghost"]?.participants.map(\.alive) == [false])
        #expect(rows["r-live"]?.participants.map(\.alive) == [true])
        await t.close()
    }
}
