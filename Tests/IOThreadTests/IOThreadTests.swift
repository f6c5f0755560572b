import MsgFloIOThread
import Synchronization
import Testing

/// The owner thread's own parts: deadlines fired by its poll timeout, the wake-up, the backoff, the executor's
/// hand-over at its end.
@Suite struct IOThreadTests {
    /// A value shared with the owner thread's closures.
    final class Cell<T: Sendable>: Sendable {
        let m: Mutex<T>
        init(_ v: T) { m = Mutex(v) }
        var value: T { m.withLock { $0 } }
        func set(_ v: T) { m.withLock { $0 = v } }
        func update(_ f: (inout T) -> Void) { m.withLock { f(&$0) } }
    }

    /// Polls `done` until it holds, for 5 s at most (the expectations that follow say what was missing).
    private static func waitUntil(_ done: () -> Bool) async throws {
        let start = ContinuousClock.now
        while !done() && ContinuousClock.now - start < .seconds(5) { try await Task.sleep(for: .milliseconds(5)) }
    }

    /// Runs `io`'s thread until `stop` is set, waiting as a transport's loop does.
    private static func runLoop(_ io: IOThread, stop: Cell<Bool>) async throws {
        try io.start {
            while !stop.value {
                io.wait(limit: .seconds(10))
                io.executor.runPending()
            }
        }
    }

    @Test func deadlinesFireInOrderOnTheOwnerThread() async throws {
        let io = try IOThread(name: "test.deadlines")
        let stop = Cell(false)
        let fired = Cell<[Int]>([])
        let offThread = Cell(0)
        // Scheduled before the thread runs, and out of order: the loop's 10 s wait is cut short by each.
        for (i, ms) in [(3, 60), (1, 20), (2, 40)] {
            io.schedule(after: .milliseconds(ms)) {
                if !io.isCurrent { offThread.update { $0 += 1 } }
                fired.update { $0.append(i) }
            }
        }
        try await Self.runLoop(io, stop: stop)
        try await Self.waitUntil { fired.value.count >= 3 }
        #expect(fired.value == [1, 2, 3])
        #expect(offThread.value == 0)
        #expect(io.scheduledCount == 0)
        stop.set(true)
        io.wake()
    }

    @Test func aDeadlineScheduledWhileTheThreadSleepsWakesIt() async throws {
        let io = try IOThread(name: "test.wake")
        let stop = Cell(false)
        try await Self.runLoop(io, stop: stop)
        try await Task.sleep(for: .milliseconds(50))  // the thread is in its 10 s wait now
        let fired = Cell(false)
        io.schedule(after: .milliseconds(10)) { fired.set(true) }
        try await Self.waitUntil { fired.value }
        // Not after the 10 s wait: the new, nearer deadline woke the thread.
        #expect(fired.value)
        stop.set(true)
        io.wake()
    }

    @Test func cancelledDeadlinesNeverFireAndAreReclaimed() async throws {
        let io = try IOThread(name: "test.cancel")
        let fired = Cell(0)
        var ids: [IOThread.Deadline?] = []
        for _ in 0..<1000 {
            ids.append(io.schedule(after: .milliseconds(30)) { fired.update { $0 += 1 } })
        }
        let kept = io.schedule(after: .milliseconds(30)) { fired.update { $0 += 1000 } }
        #expect(kept != nil)
        for id in ids { io.cancel(id) }
        io.cancel(ids[0])  // twice: no effect
        #expect(io.scheduledCount == 1)
        let stop = Cell(false)
        try await Self.runLoop(io, stop: stop)
        try await Self.waitUntil { fired.value != 0 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(fired.value == 1000)
        stop.set(true)
        io.wake()
    }

    @Test func afterTheThreadEndsNothingIsScheduledAndJobsGoToTheGlobalExecutor() async throws {
        let io = try IOThread(name: "test.end")
        let stop = Cell(true)
        let pending = io.schedule(after: .seconds(60)) { Issue.record("a dropped deadline fired") }
        #expect(pending != nil)
        try await Self.runLoop(io, stop: stop)
        try await Self.waitUntil { io.schedule(after: .seconds(60), {}) == nil }
        #expect(io.schedule(after: .zero, {}) == nil)
        #expect(io.scheduledCount == 0)
        // A task preferring the ended thread's executor still runs.
        let ran = await Task(executorPreference: io.executor) { 42 }.value
        #expect(ran == 42)
    }

    @Test func pauseEndsWhenInterruptedAndRunsJobsMeanwhile() async throws {
        let io = try IOThread(name: "test.pause")
        let done = Cell(0)  // 1: pause returned true, 2: interrupted
        let interrupt = Cell(false)
        try io.start {
            let full = io.pause(for: .milliseconds(30)) { false }
            let cut = io.pause(for: .seconds(60)) { interrupt.value }
            done.set(full && !cut ? 2 : 1)
        }
        // A job for the executor runs during the long pause.
        let value = await Task(executorPreference: io.executor) { io.isCurrent }.value
        #expect(value)
        interrupt.set(true)
        io.wake()
        try await Self.waitUntil { done.value != 0 }
        #expect(done.value == 2)
    }

    @Test func backoffDoublesUpToItsMaximumAndResets() {
        var b = Backoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0)
        let waits = (0..<6).map { _ in b.next() }
        #expect(waits == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                          .seconds(1), .seconds(1)])
        b.reset()
        #expect(b.next() == .milliseconds(100))
        var j = Backoff(initial: .milliseconds(100), maximum: .seconds(5), jitter: 0.2)
        for _ in 0..<100 {
            let d = j.next()
            #expect(d >= Duration.milliseconds(80) && d <= Duration.seconds(6))
        }
        var fresh = Backoff()
        let first = fresh.next()
        #expect(first >= Duration.milliseconds(80) && first <= Duration.milliseconds(120))
    }
}
