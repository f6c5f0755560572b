import CMosquitto
import Foundation
import MsgFlo

/// The one place where libmosquitto's status codes become ``MsgFloError``s.
enum MosquittoStatus {
    static let success = Int32(MOSQ_ERR_SUCCESS.rawValue)
    static let noConnection = Int32(MOSQ_ERR_NO_CONN.rawValue)
    static let errno = Int32(MOSQ_ERR_ERRNO.rawValue)

    /// The one-line text of a status code. `savedErrno` is `errno` read right after the failing call (it explains
    /// `MOSQ_ERR_ERRNO`).
    static func text(_ rc: Int32, errno savedErrno: Int32 = 0) -> String {
        if rc == Int32(MOSQ_ERR_ERRNO.rawValue) {
            return savedErrno != 0 ? String(cString: strerror(savedErrno)) : "system error"
        }
        if rc == Int32(MOSQ_ERR_EAI.rawValue) { return "host name lookup failed" }
        return String(cString: mosquitto_strerror(rc))
    }

    /// The error for status `rc` of `operation` (e.g. "connect", "publish to 'a.IN'") on `broker`.
    static func error(_ rc: Int32, _ operation: String, broker: BrokerURL, errno savedErrno: Int32 = 0) -> MsgFloError {
        let code: MsgFloError.Code
        switch rc {
        case Int32(MOSQ_ERR_NO_CONN.rawValue), Int32(MOSQ_ERR_CONN_LOST.rawValue), Int32(MOSQ_ERR_KEEPALIVE.rawValue):
            code = .connectionLost
        case Int32(MOSQ_ERR_ERRNO.rawValue), Int32(MOSQ_ERR_EAI.rawValue), Int32(MOSQ_ERR_LOOKUP.rawValue),
             Int32(MOSQ_ERR_PROXY.rawValue):
            code = .connectionFailed
        case Int32(MOSQ_ERR_CONN_REFUSED.rawValue), Int32(MOSQ_ERR_AUTH.rawValue), Int32(MOSQ_ERR_ACL_DENIED.rawValue):
            code = .accessRefused
        case Int32(MOSQ_ERR_TLS.rawValue), Int32(MOSQ_ERR_TLS_HANDSHAKE.rawValue), Int32(MOSQ_ERR_OCSP.rawValue):
            code = .tls
        case Int32(MOSQ_ERR_INVAL.rawValue), Int32(MOSQ_ERR_PAYLOAD_SIZE.rawValue),
             Int32(MOSQ_ERR_MALFORMED_UTF8.rawValue), Int32(MOSQ_ERR_OVERSIZE_PACKET.rawValue):
            code = .invalidArgument
        case Int32(MOSQ_ERR_NOT_SUPPORTED.rawValue), Int32(MOSQ_ERR_QOS_NOT_SUPPORTED.rawValue),
             Int32(MOSQ_ERR_RETAIN_NOT_SUPPORTED.rawValue):
            code = .unsupported
        case Int32(MOSQ_ERR_TIMEOUT.rawValue):
            code = .timeout
        default:
            code = .protocolError
        }
        let hint = code == .tls ? " (TLS handshake or verification of the broker's certificate failed: check the CA file and that the port speaks TLS)" : ""
        return MsgFloError(code, "MQTT \(operation) on \(broker) failed: \(text(rc, errno: savedErrno))\(hint)")
    }

    /// The error for a CONNACK that refused the connection (MQTT 3.1.1 return codes 1…5).
    static func refused(_ connack: Int32, broker: BrokerURL) -> MsgFloError {
        MsgFloError(.accessRefused,
                    "MQTT broker \(broker) refused the connection: \(String(cString: mosquitto_connack_string(connack)))")
    }
}

/// Calls `mosquitto_lib_init` exactly once per process, before the first client is made.
enum MosquittoLibrary {
    private static let initialized: Bool = {
        mosquitto_lib_init()
        return true
    }()

    static func ensureInitialized() { _ = initialized }
}
