import CRabbitMQ
import Glibc

/// Frames the connection's thread gathers over one loop turn and writes with one `send` (plain TCP only).
///
/// librabbitmq writes each publish as three sends (method, content header, body) and each ack as one: on the relay
/// path that was three system calls per message, and the most expensive part of our CPU per message. Here the
/// publishes and acks of a turn are encoded into one buffer and leave in one call. The bytes are librabbitmq's own:
/// methods and properties go through its exported encoders (`amqp_encode_method`, `amqp_encode_properties`), and the
/// framing is AMQP 0-9-1's (type, channel, size, payload, frame-end).
///
/// Written only on the connection's thread, and always written out (``flush(to:timeout:)``) before librabbitmq
/// writes anything itself, so frames of one channel never overtake each other. librabbitmq does not see these
/// writes: it may send a heartbeat it could have spared, which the broker ignores.
final class AMQPFrameWriter {
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    /// Bytes gathered and not yet written.
    private(set) var count = 0
    var isEmpty: Bool { count == 0 }

    /// A turn that gathers more than this writes what it has before going on (bounds the buffer for big messages).
    static let flushAbove = 512 * 1024
    private static let frameHeader = 7
    private static let frameEnd: UInt8 = 0xCE  // AMQP_FRAME_END

    init(capacity: Int = 64 * 1024) {
        self.capacity = capacity
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Forgets what was gathered (the connection it was for is gone).
    func discard() { count = 0 }

    private func reserve(_ more: Int) {
        let needed = count + more
        guard needed > capacity else { return }
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        grown.copyMemory(from: buffer, byteCount: count)
        buffer.deallocate()
        buffer = grown
        capacity = newCapacity
    }

    private static func put16(_ p: UnsafeMutableRawPointer, _ v: UInt16) { p.storeBytes(of: v.bigEndian, as: UInt16.self) }
    private static func put32(_ p: UnsafeMutableRawPointer, _ v: UInt32) { p.storeBytes(of: v.bigEndian, as: UInt32.self) }
    private static func put64(_ p: UnsafeMutableRawPointer, _ v: UInt64) { p.storeBytes(of: v.bigEndian, as: UInt64.self) }

    /// Frame header and end around a payload of `size` bytes that starts at `count + 7`; commits the frame.
    private func close(type: Int32, channel: amqp_channel_t, size: Int) {
        let start = buffer + count
        start.storeBytes(of: UInt8(type), as: UInt8.self)
        Self.put16(start + 1, channel)
        Self.put32(start + 3, UInt32(size))
        (start + Self.frameHeader + size).storeBytes(of: Self.frameEnd, as: UInt8.self)
        count += Self.frameHeader + size + 1
    }

    /// Appends a method frame whose arguments librabbitmq encodes from `decoded` (its `amqp_*_t` struct). Returns
    /// `AMQP_STATUS_OK`, or librabbitmq's negative encoding status (nothing appended then). `frameMax`: the
    /// connection's negotiated frame size, which no frame may exceed.
    func method(_ channel: amqp_channel_t, _ id: amqp_method_number_t, _ decoded: UnsafeMutableRawPointer,
                frameMax: Int) -> Int32 {
        let room = frameMax - Self.frameHeader - 1 - 4
        reserve(frameMax)
        let payload = buffer + count + Self.frameHeader
        Self.put32(payload, id)
        let n = amqp_encode_method(id, decoded, amqp_bytes_t(len: room, bytes: payload + 4))
        guard n >= 0 else { return n }
        close(type: AMQP_FRAME_METHOD, channel: channel, size: Int(n) + 4)
        return AMQP_STATUS_OK.rawValue
    }

    /// Appends a basic.publish: the method, the content header with `properties`, and the body in frames of at most
    /// `frameMax`. On an encoding error (returned, negative) nothing is appended.
    func publish(_ channel: amqp_channel_t, exchange: amqp_bytes_t, routingKey: amqp_bytes_t, mandatory: Bool,
                 properties: UnsafeMutablePointer<amqp_basic_properties_t>, body: UnsafeRawBufferPointer,
                 frameMax: Int) -> Int32 {
        let mark = count
        var m = amqp_basic_publish_t(ticket: 0, exchange: exchange, routing_key: routingKey,
                                     mandatory: mandatory ? 1 : 0, immediate: 0)
        var rc = method(channel, AMQPMethod.basicPublish, &m, frameMax: frameMax)
        guard rc == AMQP_STATUS_OK.rawValue else { return rc }
        // Content header: class, weight, body size, then the property flags and list.
        reserve(frameMax)
        let payload = buffer + count + Self.frameHeader
        Self.put16(payload, 60)  // AMQP_BASIC_CLASS
        Self.put16(payload + 2, 0)
        Self.put64(payload + 4, UInt64(body.count))
        let room = frameMax - Self.frameHeader - 1 - 12
        rc = amqp_encode_properties(60, properties, amqp_bytes_t(len: room, bytes: payload + 12))
        guard rc >= 0 else {
            count = mark
            return rc
        }
        close(type: AMQP_FRAME_HEADER, channel: channel, size: Int(rc) + 12)
        // Body frames.
        let chunk = frameMax - Self.frameHeader - 1
        var offset = 0
        while offset < body.count {
            let n = min(chunk, body.count - offset)
            reserve(n + Self.frameHeader + 1)
            (buffer + count + Self.frameHeader).copyMemory(from: body.baseAddress! + offset, byteCount: n)
            close(type: AMQP_FRAME_BODY, channel: channel, size: n)
            offset += n
        }
        return AMQP_STATUS_OK.rawValue
    }

    /// Appends basic.ack.
    func ack(_ channel: amqp_channel_t, tag: UInt64, multiple: Bool, frameMax: Int) -> Int32 {
        var a = amqp_basic_ack_t(delivery_tag: tag, multiple: multiple ? 1 : 0)
        return method(channel, AMQPMethod.basicAck, &a, frameMax: frameMax)
    }

    /// Appends basic.nack (`requeue` false: dead-lettered).
    func nack(_ channel: amqp_channel_t, tag: UInt64, frameMax: Int) -> Int32 {
        var a = amqp_basic_nack_t(delivery_tag: tag, multiple: 0, requeue: 0)
        return method(channel, AMQPMethod.basicNack, &a, frameMax: frameMax)
    }

    /// Appends basic.reject with requeue.
    func reject(_ channel: amqp_channel_t, tag: UInt64, frameMax: Int) -> Int32 {
        var a = amqp_basic_reject_t(delivery_tag: tag, requeue: 1)
        return method(channel, AMQPMethod.basicReject, &a, frameMax: frameMax)
    }

    /// Writes all that was gathered to socket `fd`, waiting for room while the socket is full (at most `timeout`
    /// without progress). Returns nil when written, else why the connection must be given up. The buffer is empty
    /// afterwards either way.
    func flush(to fd: Int32, timeout: Duration) -> String? {
        defer { count = 0 }
        var offset = 0
        let waitMs = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        while offset < count {
            let n = send(fd, buffer + offset, count - offset, Int32(MSG_NOSIGNAL))
            if n > 0 {
                offset += n
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let r = poll(&p, 1, waitMs)
                if r > 0 || (r < 0 && errno == EINTR) { continue }
                return r == 0 ? "the broker read nothing for \(timeout)" : "poll failed: \(String(cString: strerror(errno)))"
            }
            return n == 0 ? "send wrote nothing" : "send failed: \(String(cString: strerror(e)))"
        }
        return nil
    }
}
