import Synchronization
import Testing
@testable import MsgFlo

/// The hand-over from a transport to its consumers keeps AsyncStream's promises, and spreads deliveries over
/// several takers.
@Suite struct DeliveryStreamTests {
    private func delivery(_ n: Int) -> Delivery { Delivery(message: Message(text: "\(n)"), queue: "q") }
    private func number(_ d: Delivery?) -> Int? { d.flatMap { Int(String(decoding: $0.message.bytes, as: UTF8.self)) } }

    @Test func deliveriesComeInOrderAndFinishDrainsTheBuffer() async {
        let (stream, c) = DeliveryStream.makeStream()
        for i in 0..<5 { c.yield(delivery(i)) }
        c.finish()
        c.yield(delivery(99))  // after the end: ignored
        var seen: [Int] = []
        for await d in Subscription(queue: "q", stream: stream, onCancel: {}) { seen.append(number(d) ?? -1) }
        #expect(seen == [0, 1, 2, 3, 4])
        #expect(await stream.next() == nil)
    }

    @Test func aBufferedDeliveryIsTakenWithoutWaiting() async {
        let (stream, c) = DeliveryStream.makeStream()
        c.yield(delivery(1))
        let first = await stream.nextNotingWait()
        #expect(number(first?.delivery) == 1)
        #expect(first?.waited == false)
        async let second = stream.nextNotingWait()
        try? await Task.sleep(for: .milliseconds(20))
        c.yield(delivery(2))
        let got = await second
        #expect(number(got?.delivery) == 2)
        #expect(got?.waited == true)
    }

    @Test func severalTakersEachGetDistinctDeliveries() async {
        let (stream, c) = DeliveryStream.makeStream()
        let total = 2_000
        let seen = await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var mine: [Int] = []
                    while let d = await stream.next() { mine.append(self.number(d) ?? -1) }
                    return mine
                }
            }
            for i in 0..<total {
                c.yield(delivery(i))
                if i % 100 == 0 { await Task.yield() }
            }
            c.finish()
            var all: [Int] = []
            for await part in group { all += part }
            return all
        }
        #expect(seen.count == total)
        #expect(Set(seen) == Set(0..<total))
    }

    /// A batch that arrives while a woken taker has not run yet waits in the buffer for it (one wake-up for the
    /// batch); when that taker's handler then suspends, another taker is woken for the rest: a delivery never
    /// waits behind a suspended handler while a taker sleeps. Were the baton not passed, the first taker would
    /// wait for the second for ever (the test's time limit fails it).
    @Test(.timeLimit(.minutes(1))) func aTakerWhoseHandlerSuspendsLeavesTheRestToAnother() async {
        let (stream, c) = DeliveryStream.makeStream()
        let (secondTaken, signal) = AsyncStream<Int>.makeStream()
        let got = await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<2 {
                group.addTask {
                    var mine: [Int] = []
                    while let d = await stream.next() {
                        let n = self.number(d) ?? -1
                        mine.append(n)
                        if n == 0 {
                            // Suspends until another taker has taken delivery 1.
                            for await _ in secondTaken { break }
                        } else {
                            signal.yield(n)
                        }
                    }
                    return mine
                }
            }
            // Both takers wait, then a batch of two arrives at once.
            try? await Task.sleep(for: .milliseconds(50))
            c.yield(delivery(0))
            c.yield(delivery(1))
            try? await Task.sleep(for: .milliseconds(50))
            c.finish()
            var all: [[Int]] = []
            for await part in group { all.append(part) }
            return all
        }
        #expect(got.flatMap { $0 }.sorted() == [0, 1])
        #expect(got.contains([0]) && got.contains([1]), "delivery 1 went to the other taker: \(got)")
    }

    @Test func aCancelledTakerEndsTheStreamOnceAndWakesTheOthers() async {
        let (stream, c) = DeliveryStream.makeStream()
        let ends = Mutex<[DeliveryStream.Termination]>([])
        c.onTermination = { how in ends.withLock { $0.append(how) } }
        let other = Task { await stream.next() }
        let taker = Task { await stream.next() }
        try? await Task.sleep(for: .milliseconds(20))
        taker.cancel()
        #expect(await taker.value == nil)
        #expect(await other.value == nil)
        c.finish()
        c.yield(delivery(1))
        #expect(await stream.next() == nil)
        #expect(ends.withLock { $0 } == [.cancelled])
    }

    @Test func droppingTheStreamCancelsIt() async {
        let ends = Mutex<[DeliveryStream.Termination]>([])
        let c: DeliveryStream.Continuation
        do {
            let made = DeliveryStream.makeStream()
            c = made.continuation
            c.onTermination = { how in ends.withLock { $0.append(how) } }
            c.yield(delivery(1))
            _ = made.stream
        }
        #expect(ends.withLock { $0 } == [.cancelled])
        c.finish()
        #expect(ends.withLock { $0 } == [.cancelled])
    }

    @Test func finishingCallsOnTerminationWithFinished() {
        let (stream, c) = DeliveryStream.makeStream()
        let ends = Mutex<[DeliveryStream.Termination]>([])
        c.onTermination = { how in ends.withLock { $0.append(how) } }
        c.finish()
        c.finish()
        #expect(ends.withLock { $0 } == [.finished])
        withExtendedLifetime(stream) {}
    }

    @Test func bufferingNewestKeepsTheNewest() async {
        let (stream, c) = DeliveryStream.makeStream(bufferingNewest: 3)
        for i in 0..<10 { c.yield(delivery(i)) }
        c.finish()
        var seen: [Int] = []
        while let d = await stream.next() { seen.append(number(d) ?? -1) }
        #expect(seen == [7, 8, 9])
    }

    @Test func aBatchTakesWhatIsBufferedInOrderUpToItsMax() async {
        let (stream, c) = DeliveryStream.makeStream()
        c.yield(contentsOf: (0..<5).map(delivery))
        c.yield(delivery(5))
        let first = await stream.nextBatch(max: 4)
        #expect(first?.map { number($0) ?? -1 } == [0, 1, 2, 3])
        let rest = await stream.nextBatch()
        #expect(rest?.map { number($0) ?? -1 } == [4, 5])
        // Nothing buffered: the batch is the next to arrive.
        async let waited = stream.nextBatch()
        try? await Task.sleep(for: .milliseconds(20))
        c.yield(contentsOf: [delivery(6), delivery(7)])
        #expect(await waited?.map { number($0) ?? -1 } == [6, 7])
        c.yield(delivery(8))
        c.finish()
        #expect(await stream.nextBatch()?.map { number($0) ?? -1 } == [8])
        #expect(await stream.nextBatch() == nil)
    }

    @Test func runsForOneStreamAreHandedOverTogetherAndInOrder() async {
        let (a, ca) = DeliveryStream.makeStream()
        let (b, cb) = DeliveryStream.makeStream()
        DeliveryStream.yieldRuns([(ca, delivery(0)), (ca, delivery(1)), (cb, delivery(10)), (ca, delivery(2)),
                                  (cb, delivery(11)), (cb, delivery(12))])
        ca.finish()
        cb.finish()
        #expect(await a.nextBatch()?.map { number($0) ?? -1 } == [0, 1, 2])
        #expect(await b.nextBatch()?.map { number($0) ?? -1 } == [10, 11, 12])
        #expect(await a.nextBatch() == nil)
    }

    @Test func aBatchOfManyWakesOneTakerAndEveryDeliveryIsTakenOnce() async {
        let (stream, c) = DeliveryStream.makeStream()
        let total = 3_000
        let seen = await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var mine: [Int] = []
                    while let batch = await stream.nextBatch(max: 50) { mine += batch.map { self.number($0) ?? -1 } }
                    return mine
                }
            }
            for start in stride(from: 0, to: total, by: 100) {
                c.yield(contentsOf: (start..<(start + 100)).map(delivery))
                await Task.yield()
            }
            c.finish()
            var all: [[Int]] = []
            for await m in group { all.append(m) }
            return all
        }
        #expect(seen.flatMap { $0 }.sorted() == Array(0..<total))
        // Each taker's share comes in order.
        for m in seen { #expect(m == m.sorted()) }
    }

    @Test func bufferingNewestKeepsTheNewestOfABatch() async {
        let (stream, c) = DeliveryStream.makeStream(bufferingNewest: 3)
        c.yield(contentsOf: (0..<10).map(delivery))
        c.finish()
        #expect(await stream.nextBatch()?.map { number($0) ?? -1 } == [7, 8, 9])
    }
}
