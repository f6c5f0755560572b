import CRabbitMQ
import Foundation
import MsgFlo

/// `amqp_basic_properties_t._flags` bits (librabbitmq's AMQP_BASIC_*_FLAG).
enum AMQPPropertyFlag {
    static let contentType: UInt32 = 1 << 15
    static let headers: UInt32 = 1 << 13
    static let deliveryMode: UInt32 = 1 << 12
    static let priority: UInt32 = 1 << 11
    static let correlationID: UInt32 = 1 << 10
    static let replyTo: UInt32 = 1 << 9
    static let expiration: UInt32 = 1 << 8
    static let messageID: UInt32 = 1 << 7
    static let timestamp: UInt32 = 1 << 6
}

/// C memory for one publish's properties: strings and the headers table. One arena per connection loop, used on its
/// own thread only and ``reset()`` before each publish: the bytes go into a 4 KB block kept for the connection's
/// life (no allocation per string; a request's correlation id and reply-to used to cost a Swift array and a malloc
/// each); what does not fit gets a malloc of its own, freed at the next reset.
final class AMQPPropertyArena {
    private static let blockSize = 4096
    private let block: UnsafeMutableRawPointer
    private var used = 0
    private var overflow: [UnsafeMutableRawPointer] = []

    init() {
        block = UnsafeMutableRawPointer.allocate(byteCount: Self.blockSize, alignment: 16)
    }

    deinit {
        reset()
        block.deallocate()
    }

    /// Forgets what the last publish used. The pointers handed out before are invalid from here on.
    func reset() {
        used = 0
        if !overflow.isEmpty {
            for b in overflow { free(b) }
            overflow.removeAll(keepingCapacity: true)
        }
    }

    private func take(_ count: Int, alignment: Int = 1) -> UnsafeMutableRawPointer? {
        let start = (used + alignment - 1) & ~(alignment - 1)
        if start + count <= Self.blockSize {
            used = start + count
            return block + start
        }
        guard let p = malloc(count) else { return nil }
        overflow.append(p)
        return p
    }

    func bytes(_ s: String) -> amqp_bytes_t {
        var s = s
        return s.withUTF8 { u in
            guard let base = u.baseAddress, u.count > 0, let p = take(u.count) else { return amqp_empty_bytes }
            p.copyMemory(from: base, byteCount: u.count)
            return amqp_bytes_t(len: u.count, bytes: p)
        }
    }

    /// `base` (the transport's defaults) with `p` applied; `expiration` (milliseconds, text) wins over p's.
    /// `p` was checked (``MessageProperties/check(what:)``) before it was queued.
    func basicProperties(_ base: amqp_basic_properties_t, _ p: MessageProperties?,
                         expiration: String?) -> amqp_basic_properties_t {
        var props = base
        if let expiration {
            props._flags |= AMQPPropertyFlag.expiration
            props.expiration = bytes(expiration)
        }
        guard let p else { return props }
        if let v = p.contentType { props._flags |= AMQPPropertyFlag.contentType; props.content_type = bytes(v) }
        if let v = p.correlationID { props._flags |= AMQPPropertyFlag.correlationID; props.correlation_id = bytes(v) }
        if let v = p.replyTo { props._flags |= AMQPPropertyFlag.replyTo; props.reply_to = bytes(v) }
        if let v = p.messageID { props._flags |= AMQPPropertyFlag.messageID; props.message_id = bytes(v) }
        if let v = p.timestamp { props._flags |= AMQPPropertyFlag.timestamp; props.timestamp = v }
        if let v = p.priority { props._flags |= AMQPPropertyFlag.priority; props.priority = v }
        if let v = p.persistent {
            props._flags |= AMQPPropertyFlag.deliveryMode
            props.delivery_mode = v ? 2 : 1
        }
        if expiration == nil, let v = p.expirationMilliseconds {
            props._flags |= AMQPPropertyFlag.expiration
            props.expiration = bytes(String(v))
        }
        if !p.headers.isEmpty {
            let n = p.headers.count
            guard let raw = take(n * MemoryLayout<amqp_table_entry_t>.stride,
                                 alignment: MemoryLayout<amqp_table_entry_t>.alignment) else { return props }
            let entries = raw.bindMemory(to: amqp_table_entry_t.self, capacity: n)
            for (i, (k, v)) in p.headers.sorted(by: { $0.key < $1.key }).enumerated() {
                var value = amqp_field_value_t()
                switch v {
                case .string(let s):
                    value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                    value.value.bytes = bytes(s)
                case .int(let x):
                    value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
                    value.value.i64 = x
                case .double(let x):
                    value.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue)
                    value.value.f64 = x
                case .bool(let b):
                    value.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
                    value.value.boolean = b ? 1 : 0
                }
                (entries + i).initialize(to: amqp_table_entry_t(key: bytes(k), value: value))
            }
            props._flags |= AMQPPropertyFlag.headers
            props.headers = amqp_table_t(num_entries: Int32(n), entries: entries)
        }
        return props
    }
}

enum AMQPPropertyReader {
    /// The properties of a delivery, read from librabbitmq's decoded frame. Strings that are not valid UTF-8, hold
    /// NUL or are over their limit, and header values of kinds we do not carry (tables, arrays, decimals), are left
    /// out: `skipped` counts them (the caller logs one rate-limited line). The body is not touched.
    static func read(_ props: amqp_basic_properties_t, skipped: inout Int) -> MessageProperties {
        let f = props._flags
        func text(_ b: amqp_bytes_t, limit: Int = MessageProperties.shortLimit) -> String? {
            guard b.len > 0, let base = b.bytes else { return b.len == 0 ? "" : nil }
            let s = MessageProperties.networkString(UnsafeRawBufferPointer(start: base, count: b.len), limit: limit)
            if s == nil { skipped += 1 }
            return s
        }
        // Each field read into a local, the value made once at the end (setting fields one by one on a value
        // copies it each time).
        let contentType = f & AMQPPropertyFlag.contentType != 0 ? text(props.content_type) : nil
        let correlationID = f & AMQPPropertyFlag.correlationID != 0 ? text(props.correlation_id) : nil
        let replyTo = f & AMQPPropertyFlag.replyTo != 0 ? text(props.reply_to) : nil
        let messageID = f & AMQPPropertyFlag.messageID != 0 ? text(props.message_id) : nil
        let timestamp = f & AMQPPropertyFlag.timestamp != 0 ? props.timestamp : nil
        let priority = f & AMQPPropertyFlag.priority != 0 ? props.priority : nil
        let persistent = f & AMQPPropertyFlag.deliveryMode != 0 ? props.delivery_mode == 2 : nil
        var expiration: UInt64? = nil
        if f & AMQPPropertyFlag.expiration != 0, let e = text(props.expiration) {
            if let ms = UInt64(e) { expiration = ms } else { skipped += 1 }
        }
        var headers: [String: MessageProperties.HeaderValue] = [:]
        if f & AMQPPropertyFlag.headers != 0, props.headers.num_entries > 0, let entries = props.headers.entries {
            let n = Int(props.headers.num_entries)
            for i in 0..<n {
                guard headers.count < MessageProperties.maxHeaders else { skipped += n - i; break }
                let e = entries[i]
                guard let key = text(e.key), !key.isEmpty else { continue }
                let v = e.value
                let value: MessageProperties.HeaderValue?
                switch UInt32(v.kind) {
                case AMQP_FIELD_KIND_UTF8.rawValue, AMQP_FIELD_KIND_BYTES.rawValue:
                    value = text(v.value.bytes, limit: MessageProperties.valueLimit).map { .string($0) }
                case AMQP_FIELD_KIND_BOOLEAN.rawValue: value = .bool(v.value.boolean != 0)
                case AMQP_FIELD_KIND_I8.rawValue: value = .int(Int64(v.value.i8))
                case AMQP_FIELD_KIND_U8.rawValue: value = .int(Int64(v.value.u8))
                case AMQP_FIELD_KIND_I16.rawValue: value = .int(Int64(v.value.i16))
                case AMQP_FIELD_KIND_U16.rawValue: value = .int(Int64(v.value.u16))
                case AMQP_FIELD_KIND_I32.rawValue: value = .int(Int64(v.value.i32))
                case AMQP_FIELD_KIND_U32.rawValue: value = .int(Int64(v.value.u32))
                case AMQP_FIELD_KIND_I64.rawValue: value = .int(v.value.i64)
                case AMQP_FIELD_KIND_U64.rawValue, AMQP_FIELD_KIND_TIMESTAMP.rawValue:
                    value = .int(Int64(clamping: v.value.u64))
                case AMQP_FIELD_KIND_F32.rawValue: value = .double(Double(v.value.f32))
                case AMQP_FIELD_KIND_F64.rawValue: value = .double(v.value.f64)
                default:
                    skipped += 1
                    value = nil
                }
                if let value { headers[key] = value }
            }
        }
        return MessageProperties(correlationID: correlationID, replyTo: replyTo, messageID: messageID,
                                 timestamp: timestamp, contentType: contentType, headers: headers, priority: priority,
                                 expirationMilliseconds: expiration, persistent: persistent)
    }
}
