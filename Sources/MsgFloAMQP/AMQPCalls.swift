import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

// Method ids and flags librabbitmq defines as casting macros, which Swift does not import.
enum AMQPMethod {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOk: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOk: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
    /// The class of basic's content headers.
    static let basicClass: UInt16 = 60
}

/// Channels of one connection. Declarations run on their own channel so that a refused redeclare (which closes the
/// channel) never takes consumers or publishes down with it.
enum Channel {
    /// Manual-ack consumers.
    static let consume: amqp_channel_t = 1
    /// Declarations, bindings, passive checks.
    static let control: amqp_channel_t = 2
    /// Publishing, in confirm mode.
    static let publish: amqp_channel_t = 3
    /// No-ack data taps.
    static let tap: amqp_channel_t = 4
    /// Pipelined binds and unbinds (``Op/pipelined``), spread over this many channels from `firstBinding` on: the
    /// broker works through one channel's methods one after the other, through several side by side.
    static let bindingLanes = 4
    static let firstBinding: amqp_channel_t = 5

    static func binding(_ lane: Int) -> amqp_channel_t { firstBinding + amqp_channel_t(lane) }

    static func bindingLane(of channel: amqp_channel_t) -> Int? {
        channel >= firstBinding && channel < firstBinding + amqp_channel_t(bindingLanes) ? Int(channel - firstBinding) : nil
    }

    /// The lane of a binding (queue and exchange): always the same one, so that calls on one binding keep their order.
    static func bindingLane(queue: String, exchange: String) -> Int {
        var h = Hasher()
        h.combine(queue)
        h.combine(exchange)
        return Int(UInt(bitPattern: h.finalize()) % UInt(bindingLanes))
    }
}

/// Why a broker call failed.
enum CallError: Error {
    /// The connection is unusable; reconnect.
    case connectionLost(String)
    /// The broker closed the channel (it has been reopened): reply code and text.
    case channel(code: UInt16, text: String)
    /// librabbitmq refused to encode the call (a name too long for a short string, …): nothing was written, the
    /// connection is fine, the call fails alone.
    case invalid(String)

    /// librabbitmq statuses that say the arguments were bad, not the connection.
    static func isArgumentStatus(_ rc: Int32) -> Bool {
        rc == AMQP_STATUS_BAD_AMQP_DATA.rawValue || rc == AMQP_STATUS_INVALID_PARAMETER.rawValue
            || rc == AMQP_STATUS_TABLE_TOO_BIG.rawValue
    }

    func asMsgFloError(_ what: String, _ url: BrokerURL) -> MsgFloError {
        switch self {
        case .connectionLost(let why): MsgFloError(.connectionLost, "\(what) on \(url) failed: connection lost: \(why)")
        case .invalid(let why): MsgFloError(.invalidArgument, "\(what) on \(url) refused by librabbitmq: \(why)")
        case .channel(let code, let text):
            MsgFloError(code == 404 ? .notFound : code == 406 ? .preconditionFailed : code == 403 ? .accessRefused
                                                  : .protocolError, "\(what) on \(url) failed: \(text)")
        }
    }
}

// Calling librabbitmq: RPCs and their replies, channel reopening, and small conversions.
extension AMQPLoop {
    // MARK: calling librabbitmq

    /// Runs an RPC with a helper that makes `amqp_bytes_t` of Swift strings (kept alive for the call), then turns
    /// the reply into a `CallError`. Channel errors reopen the channel.
    func call<R>(_ c: amqp_connection_state_t, on channel: amqp_channel_t = Channel.control,
                         _ body: ((String) -> amqp_bytes_t) -> UnsafeMutablePointer<R>?) throws(CallError) {
        var keep: [UnsafeMutablePointer<CChar>] = []
        defer { keep.forEach { free($0) } }
        _ = body { s in
            let p = strdup(s)!
            keep.append(p)
            return amqp_bytes_t(len: strlen(p), bytes: UnsafeMutableRawPointer(p))
        }
        let r = amqp_get_rpc_reply(c)
        try check(c, r, channel)
    }

    func check(_ c: amqp_connection_state_t, _ r: amqp_rpc_reply_t, _ channel: amqp_channel_t) throws(CallError) {
        switch r.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if r.reply.id == AMQPMethod.channelClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self) {
                let code = p.pointee.reply_code
                let text = Self.string(p.pointee.reply_text)
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = amqp_send_method(c, channel, AMQPMethod.channelCloseOk, &ok)
                guard channel == Channel.control else {
                    // A consumer channel: every consumer on it is gone; start afresh on a new connection.
                    throw .connectionLost("broker closed channel \(channel): \(code) \(text)")
                }
                try reopenChecked(c, Channel.control)
                throw .channel(code: code, text: text)
            }
            if r.reply.id == AMQPMethod.connectionClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self) {
                var ok = amqp_connection_close_ok_t(dummy: 0)
                _ = amqp_send_method(c, 0, AMQPMethod.connectionCloseOk, &ok)
                throw .connectionLost("broker closed the connection: \(Self.string(p.pointee.reply_text))")
            }
            throw .connectionLost("unexpected reply \(r.reply.id)")
        default:
            if r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && CallError.isArgumentStatus(r.library_error) {
                throw .invalid(Self.replyText(r))
            }
            throw .connectionLost(Self.replyText(r))
        }
    }

    func reopen(_ c: amqp_connection_state_t, _ ch: amqp_channel_t) {
        do { try reopenChecked(c, ch) } catch { lose("cannot reopen channel \(ch)") }
    }

    func reopenChecked(_ c: amqp_connection_state_t, _ ch: amqp_channel_t) throws(CallError) {
        amqp_channel_open(c, ch)
        let r = amqp_get_rpc_reply(c)
        if r.reply_type != AMQP_RESPONSE_NORMAL {
            throw .connectionLost("cannot reopen channel \(ch): \(Self.replyText(r))")
        }
    }

    // MARK: helpers

    static func string(_ b: amqp_bytes_t) -> String {
        guard b.len > 0, let p = b.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: b.len), as: UTF8.self)
    }

    static func statusText(_ rc: Int32) -> String {
        String(cString: amqp_error_string2(rc))
    }

    static func replyText(_ r: amqp_rpc_reply_t) -> String {
        switch r.reply_type {
        case AMQP_RESPONSE_NORMAL: return "ok"
        case AMQP_RESPONSE_NONE: return "no reply"
        case AMQP_RESPONSE_LIBRARY_EXCEPTION: return statusText(r.library_error)
        default:
            if r.reply.id == AMQPMethod.connectionClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self) {
                return "\(p.pointee.reply_code) \(string(p.pointee.reply_text))"
            }
            if r.reply.id == AMQPMethod.channelClose,
               let p = r.reply.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self) {
                return "\(p.pointee.reply_code) \(string(p.pointee.reply_text))"
            }
            return "server error (method \(r.reply.id))"
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The subscription id in a consumer tag `msgflo-<id>`.
    static func subscriptionID(_ tag: amqp_bytes_t) -> Int? {
        guard tag.len > 7, tag.len < 27, let p = tag.bytes?.assumingMemoryBound(to: UInt8.self) else { return nil }
        var v = 0
        for i in 7..<tag.len {
            let d = Int(p[i]) - 48
            guard d >= 0 && d <= 9 else { return nil }
            v = v * 10 + d
        }
        return v
    }
}
