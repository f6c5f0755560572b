import Dispatch
import Foundation
import MsgFloIOThread
import Synchronization
import Testing

/// A stand-in for a transport's I/O thread: it runs the executor's jobs whenever woken, until stopped.
private final class LoopThread: Sendable {
    let wakeUp = DispatchSemaphore(value: 0)
    let stopped = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
    let turns = Atomic<Int>(0)
    let executor: IOThreadExecutor

    init() {
        let sem = wakeUp
        executor = IOThreadExecutor(wake: { sem.signal() })
    }

    func start() {
        let t = Thread { [self] in
            executor.adoptCurrentThread()
            while !stopped.load(ordering: .acquiring) {
                _ = wakeUp.wait(timeout: .now() + .milliseconds(executor.pending ? 0 : 200))
                turns.add(1, ordering: .relaxed)
                executor.runPending()
            }
            executor.shutDown()
            finished.store(true, ordering: .releasing)
        }
        t.start()
    }

    /// Ends the loop and waits (without blocking a concurrency thread) until its executor is shut down.
    func stop() async {
        stopped.store(true, ordering: .releasing)
        wakeUp.signal()
        while !finished.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(1)) }
    }
}

@Suite struct IOThreadExecutorTests {
    @Test func tasksThatPreferItRunOnTheLoopThreadAcrossSuspensions() async throws {
        let loop = LoopThread()
        loop.start()
        let executor = loop.executor
        let onLoop = await Task(executorPreference: executor) { () -> [Bool] in
            var seen = [executor.isCurrent]
            for _ in 0..<20 {
                await Task.yield()
                seen.append(executor.isCurrent)
            }
            try? await Task.sleep(for: .milliseconds(5))
            seen.append(executor.isCurrent)
            return seen
        }.value
        #expect(onLoop.count == 22)
        #expect(onLoop.allSatisfy { $0 })
        #expect(!executor.isCurrent)
        await loop.stop()
    }

    @Test func childTasksInheritItAndAllRunOnOneThread() async throws {
        let loop = LoopThread()
        loop.start()
        let executor = loop.executor
        let results = await Task(executorPreference: executor) { () -> [Bool] in
            await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        await Task.yield()
                        return executor.isCurrent
                    }
                }
                var all: [Bool] = []
                for await r in group { all.append(r) }
                return all
            }
        }.value
        #expect(results.count == 50)
        #expect(results.allSatisfy { $0 })
        await loop.stop()
    }

    @Test func afterShutDownTasksGoOnOnTheGlobalExecutor() async throws {
        let loop = LoopThread()
        loop.start()
        let executor = loop.executor
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        // A consumer parked on the loop's executor when the loop ends must still finish.
        let consumer = Task(executorPreference: executor) { () -> (sum: Int, lastOnLoop: Bool) in
            var sum = 0
            var onLoop = true
            for await n in stream {
                sum += n
                onLoop = executor.isCurrent
            }
            return (sum, onLoop)
        }
        continuation.yield(1)
        try await Task.sleep(for: .milliseconds(20))
        await loop.stop()
        continuation.yield(2)
        continuation.yield(3)
        continuation.finish()
        let result = await consumer.value
        #expect(result.sum == 6)
        #expect(result.lastOnLoop == false)
    }

    @Test func foreignEnqueuesWakeTheLoopAndOwnOnesDoNot() async throws {
        let wakes = Atomic<Int>(0)
        let executor = IOThreadExecutor(wake: { wakes.add(1, ordering: .relaxed) })
        // No loop thread yet: every enqueue is foreign and wakes; the jobs wait until someone runs them.
        let task = Task(executorPreference: executor) { 42 }
        try await Task.sleep(for: .milliseconds(20))
        #expect(executor.pending)
        #expect(wakes.load(ordering: .relaxed) == 1)
        // This thread becomes the loop thread: runs the job; its own enqueues need no wake.
        let ran = await withCheckedContinuation { (c: CheckedContinuation<Int, Never>) in
            Thread {
                executor.adoptCurrentThread()
                c.resume(returning: executor.runPending())
                executor.shutDown()
            }.start()
        }
        #expect(ran == 1)
        #expect(await task.value == 42)
        #expect(wakes.load(ordering: .relaxed) == 1)
    }
}
