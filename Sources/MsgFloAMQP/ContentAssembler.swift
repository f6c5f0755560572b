import MsgFlo

/// A basic.deliver read, and of its content what arrived so far.
struct IncomingContent {
    let channel: UInt16
    let tag: UInt64
    let redelivered: Bool
    /// The subscription its consumer tag names (nil: not one of ours).
    let subscription: Int?
    /// The properties (from its header) and the body read so far.
    var message = Message(bytes: [])
    /// The body's size, from its header (nil: the header has not arrived).
    var size: Int? = nil
}

/// Deliveries whose content is arriving, as a pure state machine (``AMQPLoop`` feeds it the frames it reads;
/// unit-tested without a broker).
///
/// A delivery is three or more frames: basic.deliver, a content header (the properties and the body's size), then
/// body frames up to that size. The loop reads them one at a time as they come, so a message split across reads
/// never blocks the thread, and each body fragment is copied once, from librabbitmq's frame buffer into the
/// message's bytes. On one channel a delivery's frames are never interleaved with other frames of that channel
/// (AMQP 0-9-1, 4.2.6); other channels' frames may come between, so each channel has its own delivery in progress.
struct ContentAssembler {
    enum Outcome {
        /// More is to come.
        case incomplete
        /// The message is whole.
        case complete(IncomingContent)
        /// The broker broke the framing rules: the connection cannot be trusted any more.
        case violation(String)
    }

    /// At most one per channel.
    private(set) var pending: [IncomingContent] = []

    /// Whether a delivery on `channel` waits for its content (a method frame there now breaks the rules; a content
    /// frame there is its; content on a channel where none waits is a returned message's, skipped).
    func awaitsContent(on channel: UInt16) -> Bool {
        !pending.isEmpty && pending.contains { $0.channel == channel }
    }

    /// A basic.deliver: its content follows on its channel.
    mutating func deliver(channel: UInt16, tag: UInt64, redelivered: Bool, subscription: Int?) {
        pending.append(IncomingContent(channel: channel, tag: tag, redelivered: redelivered,
                                       subscription: subscription))
    }

    /// What a content header carries.
    enum Properties {
        case absent
        /// A delivery mode alone (most messages): shared, nothing built.
        case deliveryMode(persistent: Bool)
        case full(MessageProperties)
    }

    /// The content header of the delivery waiting on `channel` (``awaitsContent(on:)``). `classID` must be basic's.
    mutating func header(channel: UInt16, classID: UInt16, bodySize: UInt64, properties: Properties) -> Outcome {
        guard let i = pending.firstIndex(where: { $0.channel == channel }) else {
            return .violation("a content header on channel \(channel) without a delivery")
        }
        guard pending[i].size == nil, classID == AMQPMethod.basicClass else {
            return .violation("an unexpected content header on channel \(channel)")
        }
        guard bodySize <= UInt64(Int.max) else {
            return .violation("a message of \(bodySize) bytes announced on channel \(channel)")
        }
        switch properties {
        case .absent: break
        case .deliveryMode(let persistent): pending[i].message.setDeliveryModeOnly(persistent: persistent)
        case .full(let p): pending[i].message.properties = p
        }
        pending[i].size = Int(bodySize)
        return finishIfWhole(i)
    }

    /// A body frame of the delivery waiting on `channel` (``awaitsContent(on:)``).
    mutating func body(channel: UInt16, _ part: UnsafeRawBufferPointer) -> Outcome {
        guard let i = pending.firstIndex(where: { $0.channel == channel }) else {
            return .violation("a body frame on channel \(channel) without a delivery")
        }
        // Taken out and worked on alone, put back if not whole: the bytes are appended in place.
        var item = pending.remove(at: i)
        guard let size = item.size, item.message.bytes.count + part.count <= size else {
            return .violation("a body frame that does not fit its message on channel \(channel)")
        }
        if !part.isEmpty {
            if item.message.bytes.isEmpty && part.count == size {
                // The whole body in one frame (the common case): one allocation of its exact size.
                item.message.bytes = [UInt8](part)
            } else {
                // Reserved as announced, but never more than 1 MiB ahead of what arrived.
                if item.message.bytes.isEmpty { item.message.bytes.reserveCapacity(min(size, 1 << 20)) }
                item.message.bytes.append(contentsOf: part)
            }
        }
        if item.message.bytes.count == size { return .complete(item) }
        pending.append(item)
        return .incomplete
    }

    /// The connection is gone: what was arriving is void (the broker delivers those messages again).
    mutating func reset() { pending.removeAll() }

    private mutating func finishIfWhole(_ i: Int) -> Outcome {
        guard pending[i].size == 0 else { return .incomplete }
        return .complete(pending.remove(at: i))
    }
}
