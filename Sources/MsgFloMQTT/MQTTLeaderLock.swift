import CMosquitto
import Foundation
import MsgFlo
import Synchronization

/// Leader election on MQTT (standby coordinators): each instance keeps a retained claim on `<lock>/<instance>`
/// (`{"since": start, "beat": now}`, renewed every 2 s), with a last will that clears it (an empty retained message)
/// when its connection ends without a DISCONNECT, `kill -9` included. Every instance follows `<lock>/+`; the holder
/// is the live claim that started first (then the smaller name). A claim whose beat is older than `staleAfter`
/// counts for nothing (an instance whose will was lost with a broker restart). A new instance waits `settle` after
/// its first claim before it may hold the lock, to hear the others' retained claims first.
final class MQTTLeaderLock: Sendable {
    static let beatEvery: Double = 2
    static let staleAfter: Double = 10
    static let settle: Duration = .milliseconds(1500)
    static let maxClaimBytes = 1024

    let lock: String
    let instance: String
    let topic: String
    let since: Double

    struct State {
        var claims: [String: (since: Double, beat: Double)] = [:]
        var following: Subscription?
        var reader: Task<Void, Never>?
        var firstClaim: ContinuousClock.Instant?
        var lastBeat: Double = 0
    }
    let state = Mutex(State())

    init(lock: String, instance: String, now: Double = Date().timeIntervalSince1970) {
        self.lock = lock
        self.instance = String(instance.map { "/+#".contains($0) || $0.isNewline ? "_" : $0 }.prefix(128))
        self.topic = lock + "/" + self.instance
        self.since = now
    }

    /// What the last will says: the claim is gone.
    var willTopic: String { topic }

    func claimBytes(now: Double) -> [UInt8] {
        Array(JSONValue.object(["since": .double(since), "beat": .double(now)]).serialized.utf8)
    }

    /// Takes in a retained claim (or its clearing: an empty payload).
    func heard(topic: String, payload: [UInt8]) {
        guard topic.hasPrefix(lock + "/") else { return }
        let who = String(topic.dropFirst(lock.count + 1))
        guard !payload.isEmpty, payload.count <= Self.maxClaimBytes,
              let json = try? JSONValue(parsing: String(decoding: payload, as: UTF8.self)),
              let since = json["since"]?.doubleValue, let beat = json["beat"]?.doubleValue,
              since.isFinite, beat.isFinite else {
            state.withLock { _ = $0.claims.removeValue(forKey: who) }
            return
        }
        state.withLock { $0.claims[who] = (since, beat) }
    }

    /// Whether this instance holds the lock now, by the claims heard.
    func isHolder(now: Double) -> Bool {
        state.withLock { s in
            guard let first = s.firstClaim, ContinuousClock.now - first >= Self.settle else { return false }
            var live = s.claims.filter { now - $0.value.beat <= Self.staleAfter && $0.key != instance }
                .map { (since: $0.value.since, name: $0.key) }
            live.append((since, instance))
            let holder = live.min { ($0.since, $0.name) < ($1.since, $1.name) }!
            return holder.name == instance
        }
    }
}

extension MQTTConnection {
    /// Sets the last will (before `connect()`): a retained message on `topic` when the connection ends without
    /// a DISCONNECT.
    func setWill(topic: String, payload: [UInt8], retain: Bool) throws(MsgFloError) {
        let rc = payload.withUnsafeBytes { buf in
            mosquitto_will_set(handle.raw, topic, Int32(buf.count), buf.baseAddress, 1, retain)
        }
        if rc != MosquittoStatus.success { throw MosquittoStatus.error(rc, "last will on '\(topic)'", broker: broker) }
    }

    /// Publishes a retained message at QoS 1 when connected; false when the broker is away (nothing is buffered).
    func publishRetained(_ topic: String, _ bytes: [UInt8]) throws(MsgFloError) -> Bool {
        let rc = bytes.withUnsafeBytes { buf in
            mosquitto_publish(handle.raw, nil, topic, Int32(buf.count), buf.baseAddress, 1, true)
        }
        if rc == MosquittoStatus.noConnection { return false }
        if rc != MosquittoStatus.success { throw MosquittoStatus.error(rc, "publish to '\(topic)'", broker: broker) }
        kick()
        return true
    }
}

extension MQTTTransport {
    package func prepareLock(_ name: String, instance: String) throws {
        try WireName.check(name + "/" + instance, .mqtt, what: "lock topic")
        let lock = MQTTLeaderLock(lock: name, instance: instance)
        try connection.setWill(topic: lock.willTopic, payload: [], retain: true)
        leaderLock.withLock { $0 = lock }
    }

    package func holdLock(_ name: String) async throws -> Bool {
        guard let lock = leaderLock.withLock({ $0 }), lock.lock == name else {
            throw MsgFloError(.unsupported, "MQTT lock '\(name)': prepareLock must be called before connect (it sets the last will)")
        }
        let start = lock.state.withLock { $0.following == nil }
        if start {
            let sub = try await subscribeData(name + "/+")
            // Lives as long as the lock's subscription (until close ends it): no caller's scope spans that.
            let reader = Task { for await d in sub { lock.heard(topic: d.queue, payload: d.message.bytes) } }
            lock.state.withLock {
                $0.following = sub
                $0.reader = reader
            }
        }
        let now = Date().timeIntervalSince1970
        if now - lock.state.withLock({ $0.lastBeat }) >= MQTTLeaderLock.beatEvery {
            if try connection.publishRetained(lock.topic, lock.claimBytes(now: now)) {
                lock.state.withLock { s in
                    s.lastBeat = now
                    if s.firstClaim == nil { s.firstClaim = .now }
                }
            }
        }
        return lock.isHolder(now: now)
    }
}
