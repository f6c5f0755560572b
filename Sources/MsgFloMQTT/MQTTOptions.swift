import Foundation
import MsgFlo

/// What an `mqtt://` or `mqtts://` URL asks of the connection.
///
/// Query options (all optional):
/// - `qos=0|1|2`: the QoS of every publish and subscription. 0 (msgflo's choice) by default. Above 0 the session
///   is persistent unless `cleanSession` says otherwise, so a participant that restarts finds the messages sent
///   while it was away.
/// - `clientId=ID`: the MQTT client id. Without it a clean session gets a random id and a persistent session a
///   stable one derived from the program's arguments and the broker (give one explicitly when two processes run the
///   same command line against the same broker with a persistent session).
/// - `cleanSession=true|false`: overrides the default above.
/// - `keepalive=SECONDS`: 60 by default; 0 or 5…65535.
/// - `cafile=PATH` (or `ca=PATH`), `capath=DIR`, `certfile=PATH`, `keyfile=PATH`: TLS for `mqtts://`. Without a CA
///   the system store (`/etc/ssl/certs`) is used.
/// - `insecure=true`: `mqtts://` without verifying the broker's certificate or host name (tests only).
/// - `protocol=5` (or `protocol=3.1.1`, the default): the MQTT version. Version 5 carries message properties
///   (reply-to, correlation id, headers, …) as publish properties; on 3.1.1 a send with properties fails.
///   msgflo's own participants (Node, Python) speak 3.1.1 and ignore properties; they interoperate with either.
package struct MQTTOptions: Sendable, Hashable {
    package var qos: Int32
    package var clientId: String?
    package var cleanSession: Bool
    package var keepalive: Int32
    package var caFile: String?
    package var caPath: String?
    package var certFile: String?
    package var keyFile: String?
    package var insecure: Bool
    /// 4 (MQTT 3.1.1) or 5.
    package var protocolVersion: Int32 = 4

    /// Reads the options of a broker URL. Throws a one-line `.invalidURL` error for values it cannot use.
    package init(_ url: BrokerURL) throws(MsgFloError) {
        func bad(_ what: String) -> MsgFloError {
            MsgFloError(.invalidURL, "invalid MQTT broker URL '\(url)': \(what)")
        }
        guard url.scheme.isMQTT else { throw bad("expected mqtt:// or mqtts://") }
        if let q = url.option("qos") {
            guard let v = Int32(q), (0...2).contains(v) else { throw bad("qos must be 0, 1 or 2, not '\(q)'") }
            qos = v
        } else {
            qos = 0
        }
        if let id = url.option("clientId") {
            guard !id.isEmpty, id.utf8.count <= 65535 else { throw bad("clientId must not be empty") }
            clientId = id
        }
        if url.option("cleanSession") != nil {
            guard let v = url.boolOption("cleanSession") else { throw bad("cleanSession must be true or false") }
            cleanSession = v
        } else {
            cleanSession = qos == 0
        }
        if let k = url.option("keepalive") {
            guard let v = Int32(k), v == 0 || (5...65535).contains(v) else {
                throw bad("keepalive must be 0 or 5…65535 seconds, not '\(k)'")
            }
            keepalive = v
        } else {
            keepalive = 60
        }
        caFile = url.option("cafile") ?? url.option("ca")
        caPath = url.option("capath")
        certFile = url.option("certfile")
        keyFile = url.option("keyfile")
        if url.option("insecure") != nil {
            guard let v = url.boolOption("insecure") else { throw bad("insecure must be true or false") }
            insecure = v
        } else {
            insecure = false
        }
        if (certFile == nil) != (keyFile == nil) { throw bad("certfile and keyfile go together") }
        if let v = url.option("protocol") {
            switch v {
            case "5", "5.0", "mqttv5": protocolVersion = 5
            case "3.1.1", "4", "mqttv311": protocolVersion = 4
            default: throw bad("protocol must be 5 or 3.1.1, not '\(SafeText.escape(v, limit: 40))'")
            }
        }
    }

    /// The client id to connect with: the explicit one, nil (random) for a clean session, else one derived from
    /// what stays the same when the same participant restarts: its command line and the broker.
    func effectiveClientId(for url: BrokerURL, arguments: [String] = CommandLine.arguments) -> String? {
        if let clientId { return clientId }
        if cleanSession { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a: stable across runs, unlike Hasher
        let seed = arguments.joined(separator: "\u{0}") + "\u{0}\(url.user ?? "")@\(url.host):\(url.port)"
        for b in seed.utf8 {
            hash ^= UInt64(b)
            hash &*= 0x100_0000_01b3
        }
        let program = (arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "msgflo")
            .filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        let hex = String(hash, radix: 16)
        return "msgflo-\(program.prefix(24))-\(String(repeating: "0", count: 16 - hex.count))\(hex)"
    }
}
