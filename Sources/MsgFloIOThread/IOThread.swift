import CMsgFloIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

// MsgFloIOThread: the owner thread both broker transports stand on (MsgFloAMQP around librabbitmq, MsgFloMQTT around
// libmosquitto). Each C library wants one thread that makes its calls and may block in them; that thread, its
// eventfd wake-up, the executor that runs consumer tasks on it, the reconnect backoff and the deadlines it keeps
// were written twice before. A target of its own (not `package` declarations in MsgFlo) because it is only for the
// transports: it needs a C shim (the eventfd), and the pure-Swift layers above (MsgFlo, the SDK, the coordinator)
// have no business with threads that block. It is not a product: `package` access throughout.

/// One OS thread that owns a C library's connection and makes every call on it, with what every such thread needs:
/// an eventfd that other threads write to wake it out of `poll`, an ``IOThreadExecutor`` that runs tasks preferring
/// it between its reads and writes, and deadlines (``schedule(after:_:)``) that it fires itself, its `poll` timeout
/// being the nearest of them. These deadlines are the transports' one kind of timer: timeouts of the calls they
/// answer, subscription confirmations, the connect deadline. They fire on this thread, so a timeout and the reply it
/// races with are decided in one place; they are late at most by a blocking C call in progress (each of those has its
/// own timeout).
///
/// Blocking calls stay here, off Swift's cooperative pool: callers queue work and wait on continuations.
package final class IOThread: Sendable {
    package let name: String
    package let executor: IOThreadExecutor
    /// The eventfd: readable while a wake-up is pending. Closed in deinit (the thread holds `self` while it runs).
    private let wakeFD: Int32
    private let timers = Mutex(TimerHeap())

    package struct SetupError: Error, CustomStringConvertible {
        package let what: String
        package let errno: Int32
        package var description: String { "\(what): \(String(cString: strerror(errno)))" }
    }

    /// `name`: the thread's name as `ps -L` and debuggers show it (15 bytes at most are kept).
    package init(name: String) throws(SetupError) {
        let fd = cmsgflo_io_eventfd()
        guard fd >= 0 else { throw SetupError(what: "eventfd", errno: errno) }
        self.name = name
        self.wakeFD = fd
        // Jobs from other threads always write the eventfd: a poll that starts after the write sees it readable.
        self.executor = IOThreadExecutor(wake: { Self.signal(fd) })
    }

    deinit { close(wakeFD) }

    /// Starts the thread running `body`; the executor is this thread's while it runs, and once `body` returns every
    /// job goes to Swift's global executor, and deadlines not yet fired are dropped (whoever waited on them is
    /// answered by the transport's close, which comes before). Signals are blocked on the thread: they belong to the
    /// threads that wait for them (libdispatch reads SIGCHLD and others through a signalfd, which sees only signals
    /// every thread blocks).
    package func start(_ body: @escaping @Sendable () -> Void) throws(SetupError) {
        final class Box: Sendable {
            let thread: IOThread
            let body: @Sendable () -> Void
            init(_ thread: IOThread, _ body: @escaping @Sendable () -> Void) { self.thread = thread; self.body = body }
        }
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attr, 1 << 20)
        let box = Unmanaged.passRetained(Box(self, body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.thread.run(box.body)
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SetupError(what: "starting thread \(name)", errno: rc)
        }
    }

    private func run(_ body: @Sendable () -> Void) {
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        cmsgflo_io_name_thread(name)
        executor.adoptCurrentThread()
        body()
        executor.shutDown()
        timers.withLock { $0.end() }
    }

    /// True on the owner thread.
    package var isCurrent: Bool { executor.isCurrent }

    // MARK: waking

    /// Wakes the owner thread out of ``wait(socket:events:limit:)`` (or makes its next wait return at once).
    package func wake() { Self.signal(wakeFD) }

    private static func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    /// For a wake-up that must outlive nothing: the descriptor another object writes (``signal(fd:)``) to wake this
    /// thread. Valid while this object lives.
    package var wakeDescriptor: Int32 { wakeFD }

    /// Wakes the thread whose ``wakeDescriptor`` this is.
    package static func signal(fd: Int32) { signal(fd) }

    // MARK: waiting

    /// What a wait saw.
    package struct Readiness {
        /// The socket's `revents` (0: it did not get ready, or no socket was watched).
        package var socket: Int16 = 0
        /// The errno of a failed poll (EINTR is not a failure), else 0.
        package var error: Int32 = 0
        /// The wake-up was signalled (``wake()``, or a job queued from another thread).
        package var woken = false
    }

    /// One wait of the owner thread: on `socket` for `events` (when `socket >= 0`) and on the wake-up, for no longer
    /// than `limit`, the nearest deadline, or not at all while executor jobs wait. Clears the wake-up and fires the
    /// deadlines that are due. Owner thread only.
    @discardableResult
    package func wait(socket: Int32 = -1, events: Int16 = Int16(POLLIN), limit: Duration) -> Readiness {
        let now = ContinuousClock.now
        let until = timers.withLock { t -> ContinuousClock.Instant in
            let until = min(now + limit, t.next ?? now + limit)
            t.sleepingUntil = until
            return until
        }
        var fds = (pollfd(fd: socket, events: events, revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
        let ns = executor.pending ? 0 : Self.nanoseconds(until - now)
        let n = withUnsafeMutableBytes(of: &fds) { raw in
            let p = raw.baseAddress!.assumingMemoryBound(to: pollfd.self)
            return socket >= 0 ? cmsgflo_io_poll(p, 2, ns) : cmsgflo_io_poll(p + 1, 1, ns)
        }
        var result = Readiness()
        if n < 0 && errno != EINTR { result.error = errno }
        if fds.1.revents != 0 {
            result.woken = true
            var value: UInt64 = 0
            _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
        }
        result.socket = socket >= 0 ? fds.0.revents : 0
        // Awake again, and the deadlines that came due, under one lock.
        let woke = ContinuousClock.now
        let due = timers.withLock { t -> [@Sendable () -> Void] in
            t.sleepingUntil = nil
            return t.takeDue(woke)
        }
        for action in due { action() }
        return result
    }

    /// Waits `duration` (a reconnect's backoff) while running the executor's jobs and firing deadlines;
    /// `interrupted`, asked before every wait and at least every `tick`, ends it early (a close). Owner thread only.
    /// Returns false when interrupted.
    package func pause(for duration: Duration, tick: Duration = .milliseconds(250), interrupted: () -> Bool) -> Bool {
        let until = ContinuousClock.now + duration
        while true {
            if interrupted() { return false }
            let left = until - ContinuousClock.now
            if left <= .zero { return true }
            wait(limit: min(left, tick))
            executor.runPending()
        }
    }

    /// A poll timeout: `d` in whole nanoseconds, at least 0, at most a day.
    private static func nanoseconds(_ d: Duration) -> Int64 {
        guard d > .zero else { return 0 }
        let (s, atto) = d.components
        guard s < 86_400 else { return 86_400 * 1_000_000_000 }
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    // MARK: deadlines

    /// A deadline to cancel.
    package struct Deadline: Sendable, Hashable {
        fileprivate let id: UInt64
    }

    /// Runs `action` on the owner thread once `delay` has passed, unless cancelled first. Nil when the thread has
    /// ended (then nothing is left to time out: its close answered every caller). Any thread.
    @discardableResult
    package func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> Deadline? {
        let at = ContinuousClock.now + delay
        let (id, wakeNow) = timers.withLock { t -> (UInt64?, Bool) in
            guard let id = t.add(at, action) else { return (nil, false) }
            // A thread asleep past this deadline must recompute its timeout.
            return (id, t.sleepingUntil.map { at < $0 } ?? false)
        }
        guard let id else { return nil }
        if wakeNow && !isCurrent { wake() }
        return Deadline(id: id)
    }

    /// Cancels a deadline (no-op when it fired already). Any thread.
    package func cancel(_ deadline: Deadline?) {
        guard let deadline else { return }
        timers.withLock { $0.remove(deadline.id) }
    }

    /// Fires the deadlines that are due, outside the lock. Owner thread (``wait(socket:events:limit:)`` does it).
    package func fireDue() {
        let now = ContinuousClock.now
        let due = timers.withLock { $0.takeDue(now) }
        for action in due { action() }
    }

    /// How many deadlines wait (for tests).
    package var scheduledCount: Int { timers.withLock { $0.actions.count } }
}

/// Deadlines in a binary min-heap by time; cancelling removes the action only (its heap entry is dropped when it
/// comes to the top, or when the heap is rebuilt because most of it is cancelled).
struct TimerHeap {
    private var heap: [(at: ContinuousClock.Instant, id: UInt64)] = []
    private(set) var actions: [UInt64: @Sendable () -> Void] = [:]
    private var nextID: UInt64 = 1
    private var ended = false
    /// Until when the owner thread sleeps in poll (nil: it is awake).
    var sleepingUntil: ContinuousClock.Instant?

    /// The nearest live deadline.
    var next: ContinuousClock.Instant? {
        mutating get {
            while let top = heap.first, actions[top.id] == nil { popTop() }
            return heap.first?.at
        }
    }

    mutating func add(_ at: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> UInt64? {
        guard !ended else { return nil }
        let id = nextID
        nextID += 1
        actions[id] = action
        heap.append((at, id))
        siftUp(heap.count - 1)
        return id
    }

    mutating func remove(_ id: UInt64) {
        guard actions.removeValue(forKey: id) != nil else { return }
        if heap.count > 64 && heap.count > 4 * actions.count {
            heap.removeAll { actions[$0.id] == nil }
            heap.sort { $0.at < $1.at }  // a sorted array is a heap
        }
    }

    mutating func takeDue(_ now: ContinuousClock.Instant) -> [@Sendable () -> Void] {
        var due: [@Sendable () -> Void] = []
        while let top = heap.first, top.at <= now {
            popTop()
            if let action = actions.removeValue(forKey: top.id) { due.append(action) }
        }
        return due
    }

    mutating func end() {
        ended = true
        heap = []
        actions = [:]
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && heap[l].at < heap[m].at { m = l }
            if r < heap.count && heap[r].at < heap[m].at { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }

    private mutating func siftUp(_ index: Int) {
        var i = index
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].at < heap[p].at else { return }
            heap.swapAt(i, p)
            i = p
        }
    }
}

/// The wait before the next reconnect attempt: `initial`, doubling after each failed attempt up to `maximum`, each
/// wait spread by ±`jitter` so that many clients of a restarted broker do not come back in step.
package struct Backoff: Sendable {
    package let initial: Duration
    package let maximum: Duration
    package let jitter: Double
    package private(set) var current: Duration

    package init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.current = initial
    }

    /// The wait before this attempt; the next one will be twice as long (at most `maximum`).
    package mutating func next() -> Duration {
        let d = jitter > 0 ? current * Double.random(in: (1 - jitter)...(1 + jitter)) : current
        current = min(current * 2, maximum)
        return d
    }

    /// A connection was up: the next loss starts from `initial` again.
    package mutating func reset() { current = initial }
}
