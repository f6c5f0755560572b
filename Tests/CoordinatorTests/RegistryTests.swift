import MsgFlo
import Testing
@testable import MsgFloCoordinator

func participant(_ id: String, role: String, component: String = "Repeat", heartbeat: Double? = nil,
                 ins: [String] = ["in"], outs: [String] = ["out"], commands: Bool = false) -> ParticipantDefinition {
    ParticipantDefinition(
        id: id, role: role, component: component,
        inports: ins.map { PortDefinition(id: $0, queue: PortDefinition.defaultQueue(role: role, port: $0)) },
        outports: outs.map { PortDefinition(id: $0, queue: PortDefinition.defaultQueue(role: role, port: $0)) },
        heartbeat: heartbeat, inqueue: commands ? "\(role).COMMANDS" : nil,
        capabilities: commands ? ["connectinport", "disconnectinport"] : nil)
}

@Suite struct RegistryTests {
    /// The slot a definition remembers is a hint: a slot freed and taken by another participant, or a definition
    /// registered in another registry, must never move the wrong entry.
    @Test func aStaleSlotHintNeverTouchesAnotherEntry() {
        var r = ParticipantRegistry(defaultTimeout: 100, forgetAfter: 0)
        let a = participant("a-1", role: "a")
        let b = participant("b-1", role: "b")
        #expect(r.observe(a, at: 0) == [.added(a)])
        r.remove("a-1")
        // b takes a's freed slot; a's definition still names that slot.
        #expect(r.observe(b, at: 1) == [.added(b)])
        #expect(a.registrySlot == b.registrySlot)
        #expect(r.observe(a, at: 2) == [.added(a)])
        #expect(r["b-1"]?.lastSeen == 1)
        #expect(r["a-1"]?.lastSeen == 2)
        #expect(r.observe(a, at: 3) == [])
        #expect(r["a-1"]?.lastSeen == 3)
        #expect(r["b-1"]?.lastSeen == 1)

        // Another registry files the same definitions in other slots: each keeps to its own entries.
        var other = ParticipantRegistry(defaultTimeout: 100)
        _ = other.observe(participant("c-1", role: "c"), at: 0)
        #expect(other.observe(a, at: 4) == [.added(a)])
        #expect(r.observe(a, at: 5) == [])
        #expect(other.observe(a, at: 6) == [])
        #expect(r["a-1"]?.lastSeen == 5)
        #expect(other["a-1"]?.lastSeen == 6)
        #expect(other.count == 2 && r.count == 2)

        // A lost participant's re-announcement by the very same definition is news (not the fast path).
        #expect(r.tick(at: 200).count == 2)
        #expect(r.observe(a, at: 201) == [.back(a)])
    }

    @Test func sameMessageTwiceIsOneParticipantWithLastSeenUpdated() {
        var r = ParticipantRegistry()
        let p = participant("a-1", role: "a")
        #expect(r.observe(p, at: 10) == [.added(p)])
        #expect(r.observe(p, at: 12) == [])
        #expect(r.count == 1)
        #expect(r["a-1"]?.firstSeen == 10)
        #expect(r["a-1"]?.lastSeen == 12)
    }

    @Test func unchangedReAnnouncementsOnlyRefreshLiveness() {
        var r = ParticipantRegistry()
        let p = participant("a-1", role: "a", heartbeat: 2)
        #expect(r.observe(p, at: 0) == [.added(p)])
        // Every re-announcement, whether the same value or an equal copy built anew, moves only last-seen.
        for k in 1...10 {
            let again = k % 2 == 0 ? p : participant("a-1", role: "a", heartbeat: 2)
            #expect(r.observe(again, at: Double(k) * 1.5) == [])
        }
        #expect(r["a-1"]?.lastSeen == 15)
        #expect(r["a-1"]?.firstSeen == 0)
        // Alive as long as they keep coming: lost only a heartbeat after the last one.
        #expect(r.tick(at: 16.9) == [])
        #expect(r.tick(at: 17.1) == [.lost(p)])
        // The same definition from a lost participant is a comeback, not a mere refresh.
        #expect(r.observe(p, at: 18) == [.back(p)])
        #expect(r.observe(p, at: 19) == [])
        // An announcement delivered late (an older time) never moves last-seen back.
        #expect(r.observe(p, at: 10) == [])
        #expect(r["a-1"]?.lastSeen == 19)
    }

    @Test func changedDefinitionUpdates() {
        var r = ParticipantRegistry()
        let p = participant("a-1", role: "a")
        _ = r.observe(p, at: 0)
        var q = p
        q.inports.append(PortDefinition(id: "extra", type: "string", queue: "foo"))
        #expect(r.observe(q, at: 1) == [.changed(old: p, new: q)])
        #expect(r["a-1"]?.definition == q)
        #expect(r.count == 1)
    }

    @Test func roleChangeMovesTheIndex() {
        var r = ParticipantRegistry()
        _ = r.observe(participant("x", role: "a"), at: 0)
        _ = r.observe(participant("x", role: "b"), at: 1)
        #expect(r.participants(role: "a").isEmpty)
        #expect(r.participants(role: "b").map(\.definition.id) == ["x"])
    }

    @Test func severalParticipantsShareARole() {
        var r = ParticipantRegistry()
        _ = r.observe(participant("w-1", role: "worker"), at: 0)
        _ = r.observe(participant("w-2", role: "worker"), at: 1)
        #expect(Set(r.alive(role: "worker").map(\.definition.id)) == ["w-1", "w-2"])
    }

    @Test func lostAfterItsHeartbeatAndBack() {
        var r = ParticipantRegistry(defaultTimeout: 600)
        let p = participant("a-1", role: "a", heartbeat: 2)
        _ = r.observe(p, at: 0)
        #expect(r.tick(at: 1.9) == [])
        // Announcements every 2/2.2 s: one missed (at ~1.8 s) is tolerated until 2 s have passed in silence.
        #expect(r.tick(at: 2.0) == [])
        #expect(r.tick(at: 2.1) == [.lost(p)])
        #expect(r["a-1"]?.alive == false)
        #expect(r.tick(at: 3) == [])
        #expect(r.observe(p, at: 4) == [.back(p)])
        #expect(r["a-1"]?.alive == true)
    }

    @Test func defaultTimeoutWithoutHeartbeat() {
        var r = ParticipantRegistry(defaultTimeout: 600)
        let p = participant("a-1", role: "a")
        _ = r.observe(p, at: 0)
        #expect(r.tick(at: 599) == [])
        #expect(r.tick(at: 601) == [.lost(p)])
        let next: Double? = r.nextDeadline
        #expect(next == 4200.0)
    }

    @Test func lostForLongIsForgotten() {
        var r = ParticipantRegistry(defaultTimeout: 10, forgetAfter: 100)
        let p = participant("a-1", role: "a")
        _ = r.observe(p, at: 0)
        _ = r.tick(at: 11)
        #expect(r.tick(at: 111) == [.forgotten(p)])
        #expect(r.count == 0)
        #expect(r.roles.isEmpty)
    }

    @Test func logLimiter() {
        var l = LogLimiter(window: 10, burst: 3)
        #expect(l.admit("bad json", at: 0) == ["bad json"])
        #expect(l.admit("bad json", at: 1) == [])
        #expect(l.admit("missing id", at: 1) == ["missing id"])
        #expect(l.admit("x", at: 2) == ["x"])
        #expect(l.admit("y", at: 2) == [])   // over the burst
        let next = l.admit("bad json", at: 11)
        #expect(next == ["1 more identical errors in the last 10 s were not logged",
                         "1 other errors in the last 10 s were not logged", "bad json"])
    }
}
