import MsgFlo

/// The broker subscriptions of one MQTT connection, as a state machine: what the sinks (consumers, taps, routes) and
/// declarations need, the smallest set of filters that covers it, what to SUBSCRIBE and UNSUBSCRIBE when that
/// changes, what to subscribe again after a reconnect, and when the SUBACKs of that restore are all in. Pure (no
/// libmosquitto calls): ``MQTTConnection`` makes the calls it answers and reports the message ids back; unit-tested
/// without a broker.
struct MQTTSubscriptions {
    /// With a persistent session, declared inport topics are subscribed (the broker keeps their messages).
    let persistentSession: Bool
    /// Declared inport topics.
    private(set) var declared: Set<String> = []
    /// Topics consumed as a member of a worker pool: subscribed as `$share/<pool>/<topic>`.
    private(set) var pools: [String: String] = [:]
    /// Subscriptions made (or to make at the next connect) on the broker.
    private(set) var filters: Set<String> = []
    /// Message ids of the restore's SUBSCRIBEs still waiting for their SUBACK.
    private var restoring: Set<Int32> = []
    private(set) var isRestoring = false

    init(persistentSession: Bool) {
        self.persistentSession = persistentSession
    }

    /// A change of the broker subscriptions: filters to subscribe and to unsubscribe, each sorted.
    struct Change: Equatable {
        var subscribe: [String] = []
        var unsubscribe: [String] = []
        var isEmpty: Bool { subscribe.isEmpty && unsubscribe.isEmpty }
    }

    /// Declares an inport topic; the change to make (empty when declared already, or without a persistent session).
    mutating func declare(_ topic: String, sinkFilters: Set<String>) -> Change? {
        guard declared.insert(topic).inserted, persistentSession else { return nil }
        return resync(sinkFilters: sinkFilters)
    }

    /// Makes `topic` a pooled one. Throws when it is pooled in another pool already.
    mutating func setPool(_ pool: String, for topic: String) throws(MsgFloError) {
        if let other = pools[topic], other != pool {
            throw MsgFloError(.invalidArgument, "MQTT topic '\(topic)' is already consumed in worker pool '\(other)'")
        }
        pools[topic] = pool
    }

    /// The sinks' filters changed (or a declaration): recomputes the broker subscriptions and returns the change.
    /// Pooled topics are subscribed apart, in their share group, and no wildcard may cover them.
    mutating func resync(sinkFilters: Set<String>) -> Change {
        var needed = sinkFilters
        if persistentSession { needed.formUnion(declared) }
        let pooled = needed.filter { pools[$0] != nil }
        var wanted = TopicFilter.minimalCover(needed.subtracting(pooled))
        for topic in pooled { wanted.insert("$share/\(pools[topic]!)/\(topic)") }
        let change = Change(subscribe: wanted.subtracting(filters).sorted(), unsubscribe: filters.subtracting(wanted).sorted())
        filters = wanted
        return change
    }

    /// A new session (CONNACK): every filter to subscribe again, sorted. Call ``restoreSent(_:)`` with the message
    /// ids of those sent.
    mutating func restorePlan() -> [String] {
        restoring = []
        isRestoring = true
        return filters.sorted()
    }

    /// The restore's SUBSCRIBEs went out with these message ids: true when none is outstanding (connected now).
    mutating func restoreSent(_ mids: Set<Int32>) -> Bool {
        restoring.formUnion(mids)
        return finishRestoreIfDone()
    }

    /// A SUBSCRIBE made while the restore is under way (a sink added meanwhile): its SUBACK is waited for too.
    mutating func sentDuringRestore(_ mid: Int32) {
        if isRestoring { restoring.insert(mid) }
    }

    /// A SUBACK: true when it completed the restore (connected now). Unknown and repeated ids change nothing.
    mutating func subacked(_ mid: Int32) -> Bool {
        guard isRestoring, restoring.remove(mid) != nil else { return false }
        return finishRestoreIfDone()
    }

    /// The connection is gone: a restore under way is abandoned (the next CONNACK starts another).
    mutating func connectionLost() {
        restoring = []
        isRestoring = false
    }

    private mutating func finishRestoreIfDone() -> Bool {
        guard isRestoring, restoring.isEmpty else { return false }
        isRestoring = false
        return true
    }
}
