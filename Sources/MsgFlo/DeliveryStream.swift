import Synchronization

/// The hand-over of deliveries from a transport to the tasks that consume a queue: what `AsyncStream<Delivery>` did,
/// for one concrete element type and for several takers at once.
///
/// Why not AsyncStream: its storage is generic code that the standard library does not specialise for callers in
/// other modules, so every `yield` and `next` looked up type metadata and witness tables at run time (about 9% of the
/// Echo participant's CPU per request in `Scripts/bench rpc`'s profile), and it has one taker only, so a participant
/// with prefetch N needed a second hand-over (a feeder task) to spread deliveries over its N workers. Here the
/// transport's thread hands a delivery straight to a waiting worker.
///
/// Semantics are AsyncStream's: deliveries wait in order until taken; `finish()` ends the stream after what is
/// buffered; a taker's task that is cancelled while waiting, or the last reference to the stream going away, cancels
/// the stream (buffered deliveries are dropped: the broker redelivers what was not acknowledged) and calls
/// `onTermination(.cancelled)` once. `bufferingNewest` keeps only that many, dropping the oldest (data taps).
public final class DeliveryStream: Sendable {
    public enum Termination: Sendable { case finished, cancelled }

    /// The producing side, kept by the transport.
    public struct Continuation: Sendable {
        fileprivate let core: Core

        /// Hands a delivery to a waiting taker or buffers it. Ignored once the stream has ended.
        public func yield(_ delivery: Delivery) { core.yield(delivery) }
        /// Hands deliveries over together, in order: one lock and at most one wake-up for all of them.
        public func yield<S: Sequence<Delivery>>(contentsOf deliveries: S) { core.yield(contentsOf: deliveries) }
        /// Ends the stream once its buffered deliveries are taken.
        public func finish() { core.terminate(.finished) }
        /// Called once when the stream ends, with how it ended.
        public var onTermination: (@Sendable (Termination) -> Void)? {
            get { core.state.withLock { $0.onTermination } }
            nonmutating set { core.state.withLock { $0.onTermination = newValue } }
        }
    }

    fileprivate let core: Core

    /// Hands over deliveries read together, each run of consecutive ones for the same stream with one
    /// ``Continuation/yield(contentsOf:)``: one lock and at most one wake-up per run (a transport's read pass).
    public static func yieldRuns(_ pairs: [(Continuation, Delivery)]) {
        var i = 0
        while i < pairs.count {
            let c = pairs[i].0
            var j = i + 1
            while j < pairs.count && pairs[j].0.core === c.core { j += 1 }
            if j == i + 1 { c.yield(pairs[i].1) } else { c.core.yield(run: pairs[i..<j]) }
            i = j
        }
    }

    private init(core: Core) { self.core = core }

    deinit { core.terminate(.cancelled) }

    /// A stream and its producing side. `bufferingNewest`: keep at most that many waiting deliveries.
    public static func makeStream(bufferingNewest limit: Int? = nil) -> (stream: DeliveryStream, continuation: Continuation) {
        let core = Core(limit: limit.map { max(1, $0) })
        return (DeliveryStream(core: core), Continuation(core: core))
    }

    /// The next delivery; nil once the stream has ended (or the calling task is cancelled).
    public func next() async -> Delivery? { await nextNotingWait()?.delivery }

    /// The next delivery, and whether the caller had to wait for it (none was buffered).
    public func nextNotingWait() async -> (delivery: Delivery, waited: Bool)? {
        switch core.take() {
        case .got(let d): return (d, false)
        case .ended: return nil
        case .empty: break
        }
        let core = self.core
        return await waitAndTake(own: { $0 }, take: core.take).map { ($0, true) }
    }

    /// Every delivery waiting (at most `max`), or the next one to arrive; nil once the stream has ended (or the
    /// calling task is cancelled). One lock for the lot: for consumers that handle a batch at a time on the
    /// transport's own thread (the coordinator's discovery), a batch costs what one delivery costs.
    public func nextBatch(max: Int = .max) async -> [Delivery]? {
        let max = Swift.max(1, max)
        let core = self.core
        switch core.takeBatch(max) {
        case .got(let b): return b
        case .ended: return nil
        case .empty: break
        }
        return await waitAndTake(own: { [$0] }, take: { core.takeBatch(max) })
    }

    /// Waits to be woken, then gives the delivery handed over (`own`) or what `take` finds in the buffer; waits
    /// again when another taker was quicker. Nil once the stream has ended or the calling task is cancelled.
    private func waitAndTake<T>(own: (Delivery) -> T, take: () -> Taking<T>) async -> T? {
        let core = self.core
        while true {
            let wake = await withTaskCancellationHandler {
                await withUnsafeContinuation { (c: UnsafeContinuation<Wake, Never>) in core.wait(c) }
            } onCancel: {
                core.terminate(.cancelled)
            }
            core.woke()
            switch wake {
            case .delivery(let d): return own(d)
            case .look:
                switch take() {
                case .got(let v): return v
                case .ended: return nil
                case .empty: continue  // another taker was quicker
                }
            }
        }
    }

    /// What a taker finds in the buffer.
    fileprivate enum Taking<T> { case got(T), empty, ended }

    /// What a waiting taker is woken with: a delivery of its own, or a call to look in the buffer (which another
    /// taker may have emptied meanwhile: then it waits again).
    fileprivate enum Wake { case delivery(Delivery), look }

    /// How deliveries reach takers. A delivery that arrives while takers wait and none is about to run goes to one
    /// of them at once. Deliveries that arrive while a woken taker has not run yet wait in the buffer: that taker
    /// takes them one after another without waiting (a handler that never suspends handles a whole batch for one
    /// wake-up), and, when it runs and finds more buffered, wakes one more taker to look, in case its handler
    /// suspends. So deliveries are taken in order, a backlog gets as many takers as it needs, and a batch of `k`
    /// deliveries costs two wake-ups, not `k` (a task switch each: on the relay path the largest cost after the
    /// socket).
    fileprivate final class Core: Sendable {
        struct State {
            var buffer: [Delivery] = []
            var head = 0
            var takers: [UnsafeContinuation<Wake, Never>] = []
            /// Takers woken that have not run yet.
            var waking = 0
            var ended: Termination?
            var onTermination: (@Sendable (Termination) -> Void)?
        }


        let state = Mutex(State())
        let limit: Int?

        init(limit: Int?) { self.limit = limit }

        func yield(_ d: Delivery) {
            let (taker, own) = state.withLock { s -> (UnsafeContinuation<Wake, Never>?, Bool) in
                guard s.ended == nil else { return (nil, false) }
                if s.waking == 0, s.head == s.buffer.count, let t = s.takers.popLast() {
                    s.waking += 1
                    return (t, true)
                }
                s.buffer.append(d)
                if let limit, s.buffer.count - s.head > limit { s.head += 1 }
                Self.compact(&s)
                return (Self.wakeAnother(&s), false)
            }
            taker?.resume(returning: own ? .delivery(d) : .look)
        }

        func yield<S: Sequence<Delivery>>(contentsOf deliveries: S) {
            yield { $0.append(contentsOf: deliveries) }
        }

        /// A run of ``DeliveryStream/yieldRuns(_:)``, appended without a generic sequence in between.
        func yield(run: ArraySlice<(Continuation, Delivery)>) {
            yield { buffer in for pair in run { buffer.append(pair.1) } }
        }

        private func yield(appending: (inout [Delivery]) -> Void) {
            let taker = state.withLock { s -> UnsafeContinuation<Wake, Never>? in
                guard s.ended == nil else { return nil }
                appending(&s.buffer)
                if let limit, s.buffer.count - s.head > limit { s.head = s.buffer.count - limit }
                Self.compact(&s)
                return Self.wakeAnother(&s)
            }
            taker?.resume(returning: .look)
        }

        /// A woken taker runs: when deliveries are buffered and nobody else is about to take them, one more taker
        /// is woken to look (this one may suspend in its handler).
        func woke() {
            let next = state.withLock { s -> UnsafeContinuation<Wake, Never>? in
                s.waking -= 1
                return Self.wakeAnother(&s)
            }
            next?.resume(returning: .look)
        }

        private static func wakeAnother(_ s: inout State) -> UnsafeContinuation<Wake, Never>? {
            guard s.waking == 0, s.head < s.buffer.count, let t = s.takers.popLast() else { return nil }
            s.waking += 1
            return t
        }

        func take() -> Taking<Delivery> {
            let (taken, next) = state.withLock { s -> (Taking<Delivery>, UnsafeContinuation<Wake, Never>?) in
                if s.head < s.buffer.count {
                    let d = Self.pop(&s)
                    return (.got(d), Self.wakeAnother(&s))
                }
                return (s.ended == nil ? .empty : .ended, nil)
            }
            next?.resume(returning: .look)
            return taken
        }

        func takeBatch(_ max: Int) -> Taking<[Delivery]> {
            let (taken, next) = state.withLock { s -> (Taking<[Delivery]>, UnsafeContinuation<Wake, Never>?) in
                let n = min(max, s.buffer.count - s.head)
                guard n > 0 else { return (s.ended == nil ? .empty : .ended, nil) }
                let batch: [Delivery]
                if s.head == 0 && n == s.buffer.count {
                    // The whole buffer: hand its storage over rather than copy it.
                    batch = s.buffer
                    s.buffer = []
                    s.buffer.reserveCapacity(batch.count)
                } else {
                    batch = Array(s.buffer[s.head..<(s.head + n)])
                    s.head += n
                    Self.compact(&s)
                }
                return (.got(batch), Self.wakeAnother(&s))
            }
            next?.resume(returning: .look)
            return taken
        }

        func wait(_ c: UnsafeContinuation<Wake, Never>) {
            let ready = state.withLock { s -> Bool in
                // Something to take (buffered, or the stream has ended): look at once.
                if s.head < s.buffer.count || s.ended != nil {
                    s.waking += 1
                    return true
                }
                s.takers.append(c)
                return false
            }
            if ready { c.resume(returning: .look) }
        }

        /// Ends the stream (the first call decides how) and wakes every taker to look: a finished stream's takers
        /// take what is buffered, then see the end; a cancelled stream drops its buffer.
        func terminate(_ how: Termination) {
            let (takers, handler) = state.withLock { s -> ([UnsafeContinuation<Wake, Never>], (@Sendable (Termination) -> Void)?) in
                if how == .cancelled && s.ended != .cancelled {
                    s.buffer.removeAll()
                    s.head = 0
                }
                guard s.ended == nil else { return ([], nil) }
                s.ended = how
                let takers = s.takers
                s.takers.removeAll()
                s.waking += takers.count
                let handler = s.onTermination
                s.onTermination = nil
                return (takers, handler)
            }
            for t in takers { t.resume(returning: .look) }
            handler?(how)
        }

        private static func pop(_ s: inout State) -> Delivery {
            let d = s.buffer[s.head]
            s.head += 1
            compact(&s)
            return d
        }

        private static func compact(_ s: inout State) {
            if s.head == s.buffer.count {
                s.buffer.removeAll(keepingCapacity: true)
                s.head = 0
            } else if s.head >= 1024 && s.head * 2 >= s.buffer.count {
                s.buffer.removeFirst(s.head)
                s.head = 0
            }
        }
    }
}
