import Foundation
import MsgFlo

/// What an `AMQPTransport` takes from its broker URL (and a few environment variables), checked once up front.
///
/// URL query options: `heartbeat` (seconds, default 30, 0 turns heartbeats off), `prefetch` (overrides the prefetch
/// of every consume), `persistent` (`false` publishes transient messages as msgflo-nodejs does; default true:
/// delivery mode 2, so messages in durable queues survive a broker restart), `cacertfile` or `ca` (PEM file of the
/// CA that signed the broker's certificate, amqps only; else `MSGFLO_AMQP_CA_FILE`, else the system bundle),
/// `verify=false` (amqps: do not verify the broker's certificate), `certfile`/`keyfile` (client certificate),
/// `queue-type=classic|quorum` (the type of inport queues whose port does not say; default classic, as msgflo),
/// `coalesce` (microseconds, 0...2000, default 500: how long a consumer receiving a stream lingers after the socket
/// becomes readable, to read a run of messages per wake-up; 0 turns it off; see ``ReceiveCoalescing``).
struct AMQPSettings: Sendable {
    var url: BrokerURL
    var user: String
    var password: String
    var heartbeat: Int = 30
    var prefetch: Int?
    var persistentMessages = true
    var caFile: String?
    var certFile: String?
    var keyFile: String?
    var verifyPeer = true
    var queueType: QueueType = .classic
    var coalesce: Duration = .microseconds(500)
    var timeouts: TransportTimeouts
    /// Most messages a transport holds that the broker has not confirmed yet (queued while disconnected, or written
    /// and unconfirmed). `send` waits for room beyond this.
    var maxOutstanding: Int

    init(url: BrokerURL, timeouts: TransportTimeouts, maxOutstanding: Int,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws(MsgFloError) {
        guard url.scheme.isAMQP else {
            throw MsgFloError(.invalidURL, "not an AMQP broker URL: \(url)")
        }
        self.url = url
        self.user = url.user ?? "guest"
        self.password = url.password ?? (url.user == nil ? "guest" : "")
        self.timeouts = timeouts
        self.maxOutstanding = max(1, maxOutstanding)
        func int(_ key: String, _ range: ClosedRange<Int>) throws(MsgFloError) -> Int? {
            guard let text = url.option(key) else { return nil }
            guard let v = Int(text), range.contains(v) else {
                throw MsgFloError(.invalidURL, "invalid broker URL '\(url)': option \(key)=\(text) is not a number in \(range)")
            }
            return v
        }
        func bool(_ key: String) throws(MsgFloError) -> Bool? {
            guard url.option(key) != nil else { return nil }
            guard let v = url.boolOption(key) else {
                throw MsgFloError(.invalidURL, "invalid broker URL '\(url)': option \(key) must be true or false")
            }
            return v
        }
        if let h = try int("heartbeat", 0...3600) { heartbeat = h }
        prefetch = try int("prefetch", 1...65535)
        if let p = try bool("persistent") { persistentMessages = p }
        if let us = try int("coalesce", 0...2000) { coalesce = .microseconds(us) }
        if let v = try bool("verify") { verifyPeer = v }
        caFile = url.option("cacertfile") ?? url.option("ca") ?? environment["MSGFLO_AMQP_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let t = url.option("queue-type") {
            guard let v = QueueType(text: t) else {
                throw MsgFloError(.invalidURL, "invalid broker URL '\(url)': option queue-type=\(SafeText.escape(t, limit: 32)) is not classic or quorum")
            }
            queueType = v
        }
        certFile = url.option("certfile")
        keyFile = url.option("keyfile")
        if url.scheme == .amqps, caFile == nil, verifyPeer {
            for bundle in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
            where FileManager.default.fileExists(atPath: bundle) {
                caFile = bundle
                break
            }
        }
    }
}
