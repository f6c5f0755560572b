import Foundation
import Testing

/// A test trait for CPU-bound tests (parsers on megabytes of input, fuzzing, big layouts): the test runs on one
/// thread of its own instead of Swift's cooperative pool.
///
/// Why: every test of the run shares the cooperative pool, which has one thread per core (two on CI machines). A
/// synchronous test that computes for seconds holds one of them the whole time; two such tests at the start of a run
/// stalled every other test for 12-45 s (all their waits for brokers and in-memory deliveries timed out at once).
/// On a thread of their own the CPU-bound tests only share the cores through the kernel's scheduler, and the tests
/// that wait for I/O keep getting turns. All tests with this trait share one thread, so at most one of them computes
/// at a time. Task-locals (Swift Testing's current test, for `#expect`) travel with the task, so issues are recorded
/// as usual.
public struct OffThePoolTrait: TestTrait, SuiteTrait, TestScoping {
    public typealias TestScopeProvider = Self
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A suite's own scope needs nothing; a test function's or test case's runs on the thread (a function's test
        // cases are its child tasks, which inherit the preference).
        guard !test.isSuite else { return try await function() }
        try await withTaskExecutorPreference(ComputeThread.shared) { try await function() }
    }
}

extension Trait where Self == OffThePoolTrait {
    /// Runs the test (or each test of the suite) on one thread shared by CPU-bound tests, off the cooperative pool.
    public static var offThePool: Self { OffThePoolTrait() }
}

/// One thread that runs the jobs of tasks that prefer it, in order; it lives as long as the test process.
public final class ComputeThread: TaskExecutor, @unchecked Sendable {
    // Safety of `@unchecked Sendable`: `queue` is only touched while `condition` is locked; the rest is immutable.
    public static let shared = ComputeThread(stackBytes: 64 << 20)

    private let condition = NSCondition()
    private var queue: [UnownedJob] = []

    private init(stackBytes: Int) {
        let thread = Thread { [self] in run() }
        // The deep-input tests recurse as far as the parsers allow: give them more room than the pool's threads.
        thread.stackSize = stackBytes
        thread.name = "test-compute"
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}
