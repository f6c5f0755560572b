/// Publisher confirms of the publishing channel, as a state machine: the messages written and not yet confirmed, in
/// publish order, by sequence number. Pure (generic over the message, no librabbitmq): ``AMQPLoop`` tells it what it
/// published and what the broker answered, and does what it returns; unit-tested without a broker.
///
/// The broker numbers a confirm-mode channel's publishes 1, 2, 3, … and answers each with basic.ack or basic.nack,
/// `multiple` covering every earlier one still open. A confirm of a number not outstanding (duplicate, late after the
/// channel was renewed, or simply unknown) changes nothing. When the channel or the connection is lost, what was not
/// confirmed is taken out to be published again (at-least-once) and numbering starts over on the new channel.
struct PublisherConfirms<Message> {
    private var messages: [Message] = []
    private var confirmed: [Bool] = []
    private var head = 0
    /// The sequence number of `messages[head]`.
    private var base: UInt64 = 1
    /// Outstanding (not confirmed) messages.
    private(set) var pending = 0

    /// The sequence number the next publish gets.
    var nextSequence: UInt64 { base + UInt64(messages.count - head) }

    /// A message was written to the channel.
    mutating func published(_ message: Message) {
        messages.append(message)
        confirmed.append(false)
        pending += 1
    }

    /// The broker's basic.ack or basic.nack of `tag` (and, when `multiple`, of every earlier outstanding one):
    /// `settled` is called with each message it settles, oldest first (never for a tag not outstanding).
    mutating func confirm(_ tag: UInt64, multiple: Bool, _ settled: (Message) -> Void) {
        guard tag >= base, tag - base < UInt64(messages.count - head) else { return }
        let idx = head + Int(tag - base)
        for i in (multiple ? head : idx)...idx where !confirmed[i] {
            confirmed[i] = true
            pending -= 1
            settled(messages[i])
        }
        while head < messages.count && confirmed[head] {
            head += 1
            base += 1
        }
        if head == messages.count {
            messages.removeAll(keepingCapacity: true)
            confirmed.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > messages.count {
            messages.removeFirst(head)
            confirmed.removeFirst(head)
            head = 0
        }
    }

    /// The outstanding message of sequence number `tag`, if any.
    func message(_ tag: UInt64) -> Message? {
        guard tag >= base, tag - base < UInt64(messages.count - head) else { return nil }
        let i = head + Int(tag - base)
        return confirmed[i] ? nil : messages[i]
    }

    /// The outstanding messages, oldest first.
    var outstanding: [Message] {
        var list: [Message] = []
        list.reserveCapacity(pending)
        for i in head..<messages.count where !confirmed[i] { list.append(messages[i]) }
        return list
    }

    /// The channel (or connection) is gone: the outstanding messages, oldest first, and numbering starts over at 1
    /// for the next channel.
    mutating func takeOutstanding() -> [Message] {
        let list = outstanding
        messages.removeAll(keepingCapacity: true)
        confirmed.removeAll(keepingCapacity: true)
        head = 0
        base = 1
        pending = 0
        return list
    }
}
