import MsgFlo
@testable import MsgFloMQTT
import Testing

/// The MQTT connection's subscription state without a broker: what to subscribe and unsubscribe, what a reconnect
/// restores, and when its SUBACKs are all in.
@Suite struct MQTTSubscriptionsTests {
    @Test func changesSubscribeTheSmallestCoverAndUnsubscribeWhatNobodyNeeds() {
        var s = MQTTSubscriptions(persistentSession: false)
        #expect(s.resync(sinkFilters: ["a/b", "a/c"]) == .init(subscribe: ["a/b", "a/c"]))
        // A wildcard that covers both replaces them.
        #expect(s.resync(sinkFilters: ["a/b", "a/c", "a/#"]) == .init(subscribe: ["a/#"], unsubscribe: ["a/b", "a/c"]))
        #expect(s.resync(sinkFilters: ["a/b", "a/c", "a/#"]).isEmpty)
        #expect(s.resync(sinkFilters: []) == .init(unsubscribe: ["a/#"]))
        #expect(s.filters.isEmpty)
    }

    @Test func declarationsAreSubscribedOnlyInAPersistentSession() {
        var clean = MQTTSubscriptions(persistentSession: false)
        #expect(clean.declare("in", sinkFilters: []) == nil)
        #expect(clean.filters.isEmpty)
        var kept = MQTTSubscriptions(persistentSession: true)
        #expect(kept.declare("in", sinkFilters: []) == .init(subscribe: ["in"]))
        #expect(kept.declare("in", sinkFilters: []) == nil)  // declared already
        // A consumer of the declared topic needs no second subscription; its end keeps the declared one.
        #expect(kept.resync(sinkFilters: ["in"]).isEmpty)
        #expect(kept.resync(sinkFilters: []).isEmpty)
        #expect(kept.filters == ["in"])
    }

    @Test func pooledTopicsAreSharedApartAndNeverCoveredByAWildcard() throws {
        var s = MQTTSubscriptions(persistentSession: false)
        try s.setPool("workers", for: "jobs/in")
        try s.setPool("workers", for: "jobs/in")
        var refused = false
        do { try s.setPool("others", for: "jobs/in") } catch { refused = error.code == .invalidArgument }
        #expect(refused)
        #expect(s.resync(sinkFilters: ["jobs/in", "jobs/#"]) == .init(subscribe: ["$share/workers/jobs/in", "jobs/#"]))
    }

    @Test func aReconnectRestoresEveryFilterAndIsConnectedWhenAllSubacksAreIn() {
        var s = MQTTSubscriptions(persistentSession: true)
        _ = s.declare("in", sinkFilters: [])
        _ = s.resync(sinkFilters: ["x/+"])
        s.connectionLost()
        #expect(s.restorePlan() == ["in", "x/+"])
        #expect(s.restoreSent([7, 8]) == false)
        #expect(s.isRestoring)
        // A sink added during the restore: its SUBACK is waited for as well.
        s.sentDuringRestore(9)
        #expect(s.subacked(8) == false)
        #expect(s.subacked(8) == false)   // repeated
        #expect(s.subacked(42) == false)  // unknown
        #expect(s.subacked(7) == false)
        #expect(s.subacked(9) == true)
        #expect(!s.isRestoring)
        #expect(s.subacked(9) == false)   // late, after the restore
    }

    @Test func aRestoreOfNothingIsConnectedAtOnceAndALostOneIsAbandoned() {
        var s = MQTTSubscriptions(persistentSession: false)
        #expect(s.restorePlan().isEmpty)
        #expect(s.restoreSent([]) == true)
        _ = s.resync(sinkFilters: ["t"])
        #expect(s.restorePlan() == ["t"])
        #expect(s.restoreSent([1]) == false)
        s.connectionLost()
        // The SUBACK of the lost connection's SUBSCRIBE does not complete the next restore.
        #expect(s.restorePlan() == ["t"])
        #expect(s.restoreSent([2]) == false)
        #expect(s.subacked(1) == false)
        #expect(s.subacked(2) == true)
    }
}
