@testable import MsgFloAMQP
import MsgFlo
import Testing

/// The AMQP transport's protocol state without a broker: the consumer channel's delivery tags, publisher confirms,
/// and the topology restored after a reconnect.
@Suite struct DeliveryWindowTests {
    private static let t0 = ContinuousClock.now

    /// A window on its first connection with consumer 1 (prefetch `prefetch`) holding tags 1...n.
    private static func window(prefetch: Int = 100, holding n: Int) -> DeliveryWindow {
        var w = DeliveryWindow()
        w.newConnection()
        w.addConsumer(1, prefetch: prefetch)
        for tag in 1...UInt64(max(n, 1)) where n > 0 { #expect(w.delivered(tag: tag, consumer: 1) == .accept) }
        return w
    }

    private static func settle(_ tag: UInt64, _ w: DeliveryWindow, ack: Bool = true) -> Settle {
        Settle(tag: tag, generation: w.generation, ack: ack)
    }

    @Test func acksInOrderBecomeOneDeferredMultipleAck() {
        var w = Self.window(holding: 3)
        let writes = w.settle([1, 2, 3].map { Self.settle($0, w) }, now: Self.t0)
        #expect(writes.isEmpty)
        #expect(w.hasUnsentAck)
        #expect(w.flushIfDue(now: Self.t0) == nil)  // young, and prefetch 100 is far from tight
        #expect(w.unsentAckDue == Self.t0 + DeliveryWindow.ackDelay)
        #expect(w.flushIfDue(now: Self.t0 + DeliveryWindow.ackDelay) == .ack(3, multiple: true))
        #expect(!w.hasUnsentAck)
        #expect(w.consumers[1]?.unacked == 0)
        #expect(w.flush() == nil)
    }

    @Test func aRunOfATenthOfThePrefetchFlushesAtOnce() {
        // Prefetch 1000: one multiple-ack per 100 settled messages, as a plain consumer acking every 100 does (acks of
        // 300-500 at a time cost RabbitMQ's queue process 2% more work per message).
        var w = Self.window(prefetch: 1000, holding: 250)
        _ = w.settle((1...99).map { Self.settle($0, w) }, now: Self.t0)
        #expect(!w.anyTight)
        #expect(w.flushIfDue(now: Self.t0) == nil)  // 99: young, short of a run, far from tight
        _ = w.settle([Self.settle(100, w)], now: Self.t0)
        #expect(w.flushIfDue(now: Self.t0) == .ack(100, multiple: true))
        #expect(w.consumers[1]?.unacked == 150)
        // Prefetch 1: every ack is a run of its own.
        var one = Self.window(prefetch: 1, holding: 1)
        _ = one.settle([Self.settle(1, one)], now: Self.t0)
        #expect(one.flushIfDue(now: Self.t0) == .ack(1, multiple: true))
    }

    @Test func aTightConsumerFlushesAtOnce() {
        var w = Self.window(prefetch: 2, holding: 1)
        #expect(w.anyTight)  // 1 of 2 held: half the prefetch
        _ = w.settle([Self.settle(1, w)], now: Self.t0)
        // Still counted until the ack is written: the consumer is short of room, so the ack goes now.
        #expect(w.flushIfDue(now: Self.t0) == .ack(1, multiple: true))
        #expect(!w.anyTight)
    }

    @Test func anAckBehindAHeldDeliveryIsWrittenAloneAndNacksAtOnce() {
        var w = Self.window(holding: 3)
        let writes = w.settle([Self.settle(3, w), Self.settle(2, w, ack: false)], now: Self.t0)
        #expect(writes == [.nack(2), .ack(3, multiple: false)])
        #expect(w.consumers[1]?.unacked == 1)
        #expect(!w.hasUnsentAck)
        // Settling the held first one lets the front advance past all three.
        #expect(w.settle([Self.settle(1, w)], now: Self.t0).isEmpty)
        #expect(w.flush() == .ack(1, multiple: true))
        #expect(w.consumers[1]?.unacked == 0)
    }

    @Test func duplicateStaleAndUnknownSettlesAreIgnored() {
        var w = Self.window(holding: 2)
        _ = w.settle([Self.settle(1, w, ack: false)], now: Self.t0)
        // Twice the same tag, a tag never delivered, tag 0, the largest tag, a settle of another generation.
        let hostile = [Self.settle(1, w), Self.settle(1, w, ack: false), Self.settle(99, w), Self.settle(0, w),
                       Self.settle(.max, w), Settle(tag: 2, generation: w.generation + 1, ack: true)]
        #expect(w.settle(hostile, now: Self.t0).isEmpty)
        #expect(w.consumers[1]?.unacked == 1)  // tag 2 still held
        #expect(!w.hasUnsentAck)
    }

    @Test func aReconnectVoidsWhatWasHeldAndTagsStartOver() {
        var w = Self.window(holding: 3)
        let old = w.generation
        _ = w.settle([Self.settle(1, w)], now: Self.t0)
        w.connectionLost()
        w.newConnection()
        #expect(w.generation == old + 1)
        #expect(!w.hasUnsentAck)  // the broker requeued those; an ack now would name a tag of the new channel
        #expect(w.consumers[1]?.unacked == 0)
        // Late settles of the old connection's deliveries do nothing, even though their tags exist again.
        #expect(w.delivered(tag: 1, consumer: 1) == .accept)
        #expect(w.settle([Settle(tag: 1, generation: old, ack: false), Settle(tag: 2, generation: old, ack: true)],
                         now: Self.t0).isEmpty)
        #expect(w.consumers[1]?.unacked == 1)
        #expect(w.settle([Self.settle(1, w, ack: false)], now: Self.t0) == [.nack(1)])
    }

    @Test func deliveriesOfUnknownConsumersOrOutOfOrderTagsAreRejected() {
        var w = Self.window(holding: 1)
        #expect(w.delivered(tag: 2, consumer: 7) == .reject)  // not one of ours: takes tag 2, settled
        #expect(w.delivered(tag: 9, consumer: 1) == .reject)  // a gap: not tag 3
        #expect(w.delivered(tag: 3, consumer: nil) == .reject)
        #expect(w.delivered(tag: 4, consumer: 1) == .accept)
        #expect(w.consumers[1]?.unacked == 2)
        #expect(w.settle([Self.settle(1, w), Self.settle(4, w)], now: Self.t0).isEmpty)
        #expect(w.flush() == .ack(4, multiple: true))
    }

    @Test func aCancelledConsumerGivesBackWhatItHeld() {
        var w = Self.window(holding: 2)
        w.addConsumer(2, prefetch: 10)
        #expect(w.delivered(tag: 3, consumer: 2) == .accept)
        #expect(w.delivered(tag: 4, consumer: 1) == .accept)
        #expect(w.removeConsumer(1) == [.reject(1), .reject(2), .reject(4)])
        #expect(w.removeConsumer(1) == [])
        // Its late settles are ignored; consumer 2's go on.
        #expect(w.settle([Self.settle(1, w), Self.settle(3, w, ack: false)], now: Self.t0) == [.nack(3)])
        #expect(w.delivered(tag: 5, consumer: 1) == .reject)
    }
}

@Suite struct ReceiveCoalescingTests {
    private static let t0 = ContinuousClock.now

    /// Feeds `wakes` socket wake-ups `every` apart, each after `per` deliveries of consumers with `prefetch`, from
    /// `start`; returns every decision.
    private static func feed(_ c: inout ReceiveCoalescing, from start: ContinuousClock.Instant = t0, wakes: Int,
                             every: Duration, per: Int, prefetch: Int? = 1000, tight: Bool = false) -> [Duration?] {
        (1...wakes).map { k in
            for _ in 0..<per { c.delivered(prefetch: prefetch) }
            return c.socketReady(at: start + every * k, tight: tight)
        }
    }

    @Test func aStreamLingersAtMostTheLimit() {
        // 20,000 a second: two every 100 µs.
        var c = ReceiveCoalescing(most: .microseconds(500), now: Self.t0)
        let decisions = Self.feed(&c, wakes: 200, every: .microseconds(100), per: 2)
        #expect(decisions.first! == nil, "the first wake-up of a stream is not one yet")
        #expect(decisions.last! == .microseconds(500))
        // It stops: a message 50 ms later is read at once.
        c.delivered(prefetch: 1000)
        #expect(c.socketReady(at: Self.t0 + .milliseconds(70), tight: false) == nil)
    }

    @Test func aTrickleOrItsBurstsAreReadAtOnce() {
        var c = ReceiveCoalescing(most: .microseconds(500), now: Self.t0)
        // 1,000 a second, one at a time, then in threes every 3 ms.
        #expect(Self.feed(&c, wakes: 100, every: .milliseconds(1), per: 1).allSatisfy { $0 == nil })
        #expect(Self.feed(&c, from: Self.t0 + .milliseconds(100), wakes: 30, every: .milliseconds(3), per: 3)
            .allSatisfy { $0 == nil })
    }

    @Test func neverWhileAConsumerIsShortOfRoomNorForSmallPrefetches() {
        var tight = ReceiveCoalescing(most: .microseconds(500), now: Self.t0)
        #expect(Self.feed(&tight, wakes: 200, every: .microseconds(100), per: 2, tight: true).allSatisfy { $0 == nil })
        var small = ReceiveCoalescing(most: .microseconds(500), now: Self.t0)
        #expect(Self.feed(&small, wakes: 200, every: .microseconds(100), per: 2, prefetch: 2).allSatisfy { $0 == nil })
        // Prefetch 10 at 20,000 a second: a quarter of it (2) comes in about 100 µs.
        var ten = ReceiveCoalescing(most: .microseconds(500), now: Self.t0)
        let linger = Self.feed(&ten, wakes: 200, every: .microseconds(100), per: 2, prefetch: 10).last!
        #expect(linger.map { $0 >= .microseconds(80) && $0 <= .microseconds(130) } == true, "\(String(describing: linger))")
        // A no-ack consumer is not held back by the broker: it does not limit the linger.
        var taps = ReceiveCoalescing(most: .microseconds(500), now: Self.t0)
        #expect(Self.feed(&taps, wakes: 200, every: .microseconds(100), per: 2, prefetch: nil).last! == .microseconds(500))
    }

    @Test func zeroTurnsItOff() {
        var off = ReceiveCoalescing(most: .zero, now: Self.t0)
        #expect(Self.feed(&off, wakes: 200, every: .microseconds(100), per: 2).allSatisfy { $0 == nil })
    }
}

@Suite struct PublisherConfirmsTests {
    @Test func singleAndMultipleAcksSettleInOrder() {
        var c = PublisherConfirms<String>()
        for m in ["a", "b", "c", "d"] { c.published(m) }
        #expect(c.nextSequence == 5)
        #expect(c.confirm(2, multiple: false) == ["b"])
        #expect(c.pending == 3)
        #expect(c.confirm(3, multiple: true) == ["a", "c"])
        #expect(c.outstanding == ["d"])
        #expect(c.confirm(4, multiple: false) == ["d"])
        #expect(c.pending == 0)
        c.published("e")
        #expect(c.nextSequence == 6)
        #expect(c.message(5) == "e")
    }

    @Test func duplicateLateAndUnknownConfirmsChangeNothing() {
        var c = PublisherConfirms<String>()
        for m in ["a", "b", "c"] { c.published(m) }
        #expect(c.confirm(1, multiple: false) == ["a"])
        #expect(c.confirm(1, multiple: false) == [])
        #expect(c.confirm(1, multiple: true) == [])
        #expect(c.confirm(0, multiple: true) == [])
        #expect(c.confirm(4, multiple: false) == [])
        #expect(c.confirm(.max, multiple: true) == [])
        #expect(c.pending == 2)
        #expect(c.confirm(3, multiple: false) == ["c"])
        #expect(c.confirm(3, multiple: false) == [])
        #expect(c.confirm(2, multiple: true) == ["b"])
        #expect(c.message(2) == nil)
    }

    @Test func aLostChannelGivesBackWhatWasNotConfirmedAndNumberingStartsOver() {
        var c = PublisherConfirms<String>()
        for m in ["a", "b", "c", "d"] { c.published(m) }
        _ = c.confirm(2, multiple: false)
        #expect(c.takeOutstanding() == ["a", "c", "d"])
        #expect(c.pending == 0)
        #expect(c.nextSequence == 1)
        // A late confirm from the old channel names a number not outstanding on the new one.
        #expect(c.confirm(3, multiple: true) == [])
        c.published("a")
        #expect(c.confirm(1, multiple: false) == ["a"])
    }

    @Test func aLongRunKeepsItsMemorySmall() {
        var c = PublisherConfirms<Int>()
        c.published(0)  // held to the end: the others are confirmed behind it
        for i in 1...10_000 {
            c.published(i)
            #expect(c.confirm(UInt64(i + 1), multiple: false) == [i])
        }
        #expect(c.pending == 1)
        #expect(c.confirm(1, multiple: true) == [0])
        #expect(c.outstanding.isEmpty)
        #expect(c.nextSequence == 10_002)
    }
}

@Suite struct AMQPTopologyTests {
    private static func record(_ id: Int, queue: String = "q", tap: Bool = false, directReplyTo: Bool = false)
        -> SubscriptionRecord {
        let (_, continuation) = DeliveryStream.makeStream()
        return SubscriptionRecord(id: id, queue: queue, prefetch: 2, isTap: tap, directReplyTo: directReplyTo,
                                  continuation: continuation)
    }

    @Test func aReconnectRestoresDeclarationsInOrderThenConsumers() {
        var t = AMQPTopology()
        t.record(.declareOutport("a", persistent: true))
        t.record(.declareInport("b", persistent: false))
        t.record(.declareOutport("a", persistent: true))  // made twice, restored once
        t.record(.bind(Binding(src: "a", tgt: "b")))
        t.record(.holdExclusive("lock"))  // a lock of this connection's, and lookups: not restored
        t.record(.depth("b"))
        t.add(Self.record(2))
        t.add(Self.record(1, tap: true))
        t.started(1, tapQueue: "amq.gen-1")
        t.started(2, tapQueue: nil)
        #expect(t.restorePlan == [.declare(.declareOutport("a", persistent: true)), .declare(.declareInport("b", persistent: false)),
                                  .declare(.bind(Binding(src: "a", tgt: "b")))])
        t.connectionLost()
        #expect(t.consumers[1]?.tapQueue == nil)
        #expect(t.restorePlan.suffix(2) == [.consume(1), .consume(2)])
    }

    @Test func unbindAndCancelAreNotRestored() {
        var t = AMQPTopology()
        let b = Binding(.roundRobin, src: "a", tgt: "b")
        t.record(.bind(b))
        t.record(.declareDiscovery)
        t.forget(b)
        t.forget(b)
        t.add(Self.record(1))
        t.add(Self.record(2))
        #expect(t.remove(1) != nil)
        #expect(t.remove(1) == nil)
        #expect(t.remove(42) == nil)  // a broker's cancel of a consumer tag we do not have
        t.connectionLost()
        #expect(t.restorePlan == [.declare(.declareDiscovery), .consume(2)])
    }

    @Test func renewingThePublishChannelRestartsDirectReplyConsumersOnly() {
        var t = AMQPTopology()
        t.add(Self.record(1, queue: "amq.rabbitmq.reply-to", directReplyTo: true))
        t.add(Self.record(2))
        t.started(1, tapQueue: nil)
        t.started(2, tapQueue: nil)
        #expect(t.consumesDirectReplies)
        #expect(t.publishChannelRenewed() == [1])
        #expect(!t.consumesDirectReplies)
        #expect(t.restorePlan == [.consume(1)])
    }
}

@Suite struct ControlPipelineTests {
    private static let bindOk = ControlMethod.queueBindOk
    private static let unbindOk = ControlMethod.queueUnbindOk

    /// A pipeline with calls "a", "b", … written, each expecting `reply`.
    private static func pipeline(_ calls: [String], reply: UInt32 = bindOk) -> ControlPipeline<String> {
        var p = ControlPipeline<String>()
        for c in calls { p.wrote(c, expecting: reply) }
        return p
    }

    @Test func repliesAnswerTheCallsInTheOrderWritten() {
        var p = ControlPipeline<String>()
        p.wrote("bind a", expecting: Self.bindOk)
        p.wrote("unbind b", expecting: Self.unbindOk)
        p.wrote("bind c", expecting: Self.bindOk)
        #expect(p.count == 3)
        guard case .done("bind a") = p.replied(Self.bindOk) else { Issue.record("first reply"); return }
        guard case .done("unbind b") = p.replied(Self.unbindOk) else { Issue.record("second reply"); return }
        guard case .done("bind c") = p.replied(Self.bindOk) else { Issue.record("third reply"); return }
        #expect(p.isEmpty)
    }

    @Test func aReplyThatAnswersNoOutstandingCallIsUnexpectedOrStray() {
        var p = Self.pipeline(["bind a"])
        // The oldest call is a bind: an unbind-ok cannot be its answer, and the channel's state is then unknown.
        guard case .unexpected(let m) = p.replied(Self.unbindOk) else { Issue.record("mismatch not caught"); return }
        #expect(m == Self.unbindOk)
        #expect(p.count == 1)  // still outstanding: the caller gives the connection up and takes it back
        #expect(p.connectionLost() == ["bind a"])
        // Nothing outstanding: a reply is not the pipeline's (a call made alone answers its own).
        guard case .stray = p.replied(Self.bindOk) else { Issue.record("stray reply"); return }
    }

    @Test func aRefusalFailsTheOldestCallAloneAndTheLaterOnesAreWrittenAgain() {
        var p = Self.pipeline(["a", "b", "c", "d"])
        guard case .done("a") = p.replied(Self.bindOk) else { Issue.record("a"); return }
        // channel.close answers "b"; the broker ignored "c" and "d", which got no answer at all.
        let (refused, unanswered) = p.channelClosed()
        #expect(refused == "b")
        #expect(unanswered == ["c", "d"])
        #expect(p.isEmpty)
        // Written again on the reopened channel, they are answered in order; a second refusal fails only its own.
        for c in unanswered { p.wrote(c, expecting: Self.bindOk) }
        let (again, rest) = p.channelClosed()
        #expect(again == "c")
        #expect(rest == ["d"])
    }

    @Test func aRefusalWithNothingPipelinedBelongsToNoCall() {
        var p = ControlPipeline<String>()
        let (refused, unanswered) = p.channelClosed()
        #expect(refused == nil)
        #expect(unanswered.isEmpty)
    }

    @Test func aLostConnectionHandsBackEveryUnansweredCallOldestFirst() {
        var p = Self.pipeline(["a", "b", "c"])
        guard case .done("a") = p.replied(Self.bindOk) else { Issue.record("a"); return }
        #expect(p.connectionLost() == ["b", "c"])
        #expect(p.isEmpty)
        #expect(p.connectionLost().isEmpty)
        // The next connection starts with an empty pipeline.
        p.wrote("d", expecting: Self.bindOk)
        guard case .done("d") = p.replied(Self.bindOk) else { Issue.record("d"); return }
    }

    @Test func onlySingleMethodBindsAndUnbindsArePipelined() {
        let pubsub = Binding(src: "a.OUT", tgt: "b.IN")
        #expect(Op.bind(pubsub).pipelined?.method == ControlMethod.queueBind)
        #expect(Op.bind(pubsub).pipelined?.queue == "b.IN")
        #expect(Op.bind(pubsub).pipelined?.exchange == "a.OUT")
        // Round-robin and dead-letter binds declare an exchange first: made one call at a time.
        #expect(Op.bind(Binding(.roundRobin, src: "a.OUT", tgt: "b.IN")).pipelined == nil)
        #expect(Op.bind(Binding(.deadLetter, src: "a.IN", tgt: "b.IN")).pipelined == nil)
        // Every unbind is one queue.unbind, from the exchange its kind binds to.
        #expect(Op.unbind(Binding(.roundRobin, src: "a.OUT", tgt: "b.IN")).pipelined?.exchange == "out-a.OUT")
        #expect(Op.unbind(Binding(.deadLetter, src: "a.IN", tgt: "b.IN")).pipelined?.exchange == "dead-a.IN")
        #expect(Op.unbind(pubsub).pipelined?.reply == ControlMethod.queueUnbindOk)
        #expect(Op.declareInport("q", persistent: true).pipelined == nil)
        #expect(Op.depth("q").pipelined == nil)
    }
}

extension PublisherConfirms {
    /// The messages a confirm settles, oldest first.
    mutating func confirm(_ tag: UInt64, multiple: Bool) -> [Message] {
        var settled: [Message] = []
        confirm(tag, multiple: multiple) { settled.append($0) }
        return settled
    }
}

/// A delivery's frames (deliver, content header, body frames) put together as they come.
@Suite struct ContentAssemblerTests {
    private static func complete(_ o: ContentAssembler.Outcome) -> IncomingContent? {
        if case .complete(let item) = o { return item }
        return nil
    }

    private static func violation(_ o: ContentAssembler.Outcome) -> String? {
        if case .violation(let what) = o { return what }
        return nil
    }

    private static func body(_ a: inout ContentAssembler, _ channel: UInt16, _ bytes: [UInt8])
        -> ContentAssembler.Outcome {
        bytes.withUnsafeBytes { a.body(channel: channel, $0) }
    }

    @Test func aBodyInOneFrameCompletesWithItsProperties() throws {
        var a = ContentAssembler()
        a.deliver(channel: 1, tag: 7, redelivered: true, subscription: 3)
        #expect(a.awaitsContent(on: 1))
        #expect(!a.awaitsContent(on: 3))
        let props = MessageProperties(correlationID: "c", persistent: true)
        guard case .incomplete = a.header(channel: 1, classID: 60, bodySize: 3, properties: .full(props)) else {
            Issue.record("the header alone completed a 3-byte message")
            return
        }
        let item = try #require(Self.complete(Self.body(&a, 1, [1, 2, 3])))
        #expect(item.message.bytes == [1, 2, 3])
        #expect(item.message.properties == props)
        #expect(item.tag == 7 && item.redelivered && item.subscription == 3 && item.channel == 1)
        #expect(!a.awaitsContent(on: 1))
    }

    @Test func anEmptyBodyCompletesAtItsHeader() throws {
        var a = ContentAssembler()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: nil)
        let item = try #require(Self.complete(a.header(channel: 1, classID: 60, bodySize: 0, properties: .absent)))
        #expect(item.message.bytes.isEmpty)
        #expect(item.message.properties.isEmpty)
        #expect(a.pending.isEmpty)
        // A delivery mode alone (what most messages carry) comes out as that property alone.
        for persistent in [true, false] {
            a.deliver(channel: 1, tag: 2, redelivered: false, subscription: nil)
            let m = try #require(Self.complete(a.header(channel: 1, classID: 60, bodySize: 0,
                                                        properties: .deliveryMode(persistent: persistent))))
            #expect(m.message.properties == MessageProperties(persistent: persistent))
        }
    }

    @Test func aBodyInSeveralFramesWithAnotherChannelBetween() throws {
        var a = ContentAssembler()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        _ = a.header(channel: 1, classID: 60, bodySize: 5, properties: .absent)
        guard case .incomplete = Self.body(&a, 1, [1, 2]) else { Issue.record("complete after 2 of 5"); return }
        // A reply on the publishing channel comes whole between two parts of the first.
        a.deliver(channel: 3, tag: 1, redelivered: false, subscription: 2)
        _ = a.header(channel: 3, classID: 60, bodySize: 1, properties: .full(MessageProperties(correlationID: "r")))
        let reply = try #require(Self.complete(Self.body(&a, 3, [9])))
        #expect(reply.message.bytes == [9] && reply.subscription == 2)
        let first = try #require(Self.complete(Self.body(&a, 1, [3, 4, 5])))
        #expect(first.message.bytes == [1, 2, 3, 4, 5] && first.subscription == 1)
        #expect(a.pending.isEmpty)
    }

    @Test func framingViolationsAreNamed() {
        var a = ContentAssembler()
        // Content with no delivery waiting.
        #expect(Self.violation(a.header(channel: 1, classID: 60, bodySize: 1, properties: .absent)) != nil)
        #expect(Self.violation(Self.body(&a, 1, [1])) != nil)
        // A body before its header; a second header; a body past the announced size; a class not basic's.
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        #expect(Self.violation(Self.body(&a, 1, [1])) != nil)
        a.reset()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        _ = a.header(channel: 1, classID: 60, bodySize: 2, properties: .absent)
        #expect(Self.violation(a.header(channel: 1, classID: 60, bodySize: 2, properties: .absent)) != nil)
        a.reset()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        _ = a.header(channel: 1, classID: 60, bodySize: 2, properties: .absent)
        #expect(Self.violation(Self.body(&a, 1, [1, 2, 3])) != nil)
        a.reset()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        #expect(Self.violation(a.header(channel: 1, classID: 50, bodySize: 2, properties: .absent)) != nil)
        // A size past what an Int holds.
        a.reset()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        #expect(Self.violation(a.header(channel: 1, classID: 60, bodySize: .max, properties: .absent)) != nil)
    }

    @Test func aResetForgetsWhatWasArriving() {
        var a = ContentAssembler()
        a.deliver(channel: 1, tag: 1, redelivered: false, subscription: 1)
        _ = a.header(channel: 1, classID: 60, bodySize: 4, properties: .absent)
        _ = Self.body(&a, 1, [1, 2])
        a.reset()
        #expect(!a.awaitsContent(on: 1))
        #expect(a.pending.isEmpty)
    }
}
