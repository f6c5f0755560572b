#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// A task executor whose jobs run on a transport's own I/O thread, between its network reads and writes.
///
/// Why: a message handler that runs on Swift's global pool costs two thread hand-overs per message (the I/O thread
/// wakes a pool thread with the delivery; the pool thread wakes the I/O thread with the reply it publishes). A consumer
/// task that prefers this executor (`Task(executorPreference: transport.preferredExecutor)`) runs on the I/O thread
/// itself: a delivery resumes it without waking anyone, and what it publishes is written in the same turn of the
/// loop. This is the model of msgflo's Node.js and Python SDKs and of SwiftNIO's event loops, with the same rule:
/// a handler must not block (awaiting is fine; CPU-heavy or blocking work belongs on another executor).
///
/// The owning loop calls ``runPending()`` on every turn and does not block while ``pending`` (``IOThread/wait(socket:events:limit:)``).
/// Jobs enqueued from other threads call `wake` (``IOThread``'s eventfd) so that a sleeping loop turns.
/// After ``shutDown()`` (the loop has ended for good), jobs go to Swift's global executor, so that nothing that
/// preferred this executor is ever stranded.
package final class IOThreadExecutor: TaskExecutor, @unchecked Sendable {
    // Safety of `@unchecked Sendable`: `queue` and `closed` are only touched under `lock`; `owner` is an atomic;
    // `wake` is immutable and itself thread-safe; `running` is touched by the I/O thread only.
    private struct Queue {
        var jobs: [UnownedJob] = []
        var closed = false
    }

    private let lock = Mutex(Queue())
    /// The I/O thread (`pthread_self()` as a number), 0 before it starts.
    private let owner = Atomic<UInt>(0)
    private let wake: @Sendable () -> Void
    /// A job is waiting: lets the loop skip a blocking wait without taking the lock.
    private let hasJobs = Atomic<Bool>(false)

    package init(wake: @escaping @Sendable () -> Void) {
        self.wake = wake
    }

    /// Marks the calling thread as the one that runs the jobs. Called by the loop when its thread starts.
    package func adoptCurrentThread() {
        owner.store(UInt(pthread_self()), ordering: .releasing)
    }

    /// True on the I/O thread.
    package var isCurrent: Bool {
        owner.load(ordering: .acquiring) == UInt(pthread_self())
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let accepted = lock.withLock { q -> Bool in
            if q.closed { return false }
            q.jobs.append(unowned)
            hasJobs.store(true, ordering: .releasing)
            return true
        }
        guard accepted else {
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
            return
        }
        if !isCurrent { wake() }
    }

    /// Whether jobs wait: the loop should poll without blocking.
    package var pending: Bool { hasJobs.load(ordering: .acquiring) }

    /// Runs the jobs waiting now (not those they enqueue: the loop gets to do I/O in between). I/O thread only.
    /// Returns how many ran.
    @discardableResult
    package func runPending() -> Int {
        guard pending else { return 0 }
        // The queue's buffer and `running` change places: no allocation per turn.
        lock.withLock { q in
            hasJobs.store(false, ordering: .releasing)
            swap(&q.jobs, &running)
        }
        let me = asUnownedTaskExecutor()
        for job in running { job.runSynchronously(on: me) }
        let count = running.count
        running.removeAll(keepingCapacity: true)
        return count
    }

    /// The jobs being run by ``runPending()``. I/O thread only.
    private nonisolated(unsafe) var running: [UnownedJob] = []

    /// The loop has ended for good: the jobs waiting and all later ones run on Swift's global executor.
    package func shutDown() {
        let jobs = lock.withLock { q -> [UnownedJob] in
            q.closed = true
            hasJobs.store(false, ordering: .releasing)
            defer { q.jobs = [] }
            return q.jobs
        }
        owner.store(0, ordering: .releasing)
        // Each job runs where it would have run without a preference.
        let global = globalConcurrentExecutor
        for job in jobs { global.enqueue(ExecutorJob(job)) }
    }
}
