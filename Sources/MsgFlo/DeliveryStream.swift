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
        /// Ends the stream once its buffered deliveries are taken.
        public func finish() { core.terminate(.finished) }
        /// Called once when the stream ends, with how it ended.
        public var onTermination: (@Sendable (Termination) -> Void)? {
            get { core.state.withLock { $0.onTermination } }
            nonmutating set { core.state.withLock { $0.onTermination = newValue } }
        }
    }

    fileprivate let core: Core

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
        case .delivery(let d): return (d, false)
        case .ended: return nil
        case .empty: break
        }
        let core = self.core
        let d = await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Delivery?, Never>) in core.wait(c) }
        } onCancel: {
            core.terminate(.cancelled)
        }
        return d.map { ($0, true) }
    }

    fileprivate final class Core: Sendable {
        struct State {
            var buffer: [Delivery] = []
            var head = 0
            var takers: [UnsafeContinuation<Delivery?, Never>] = []
            var ended: Termination?
            var onTermination: (@Sendable (Termination) -> Void)?
        }

        enum Taken { case delivery(Delivery), empty, ended }

        let state = Mutex(State())
        let limit: Int?

        init(limit: Int?) { self.limit = limit }

        func yield(_ d: Delivery) {
            let taker = state.withLock { s -> UnsafeContinuation<Delivery?, Never>? in
                guard s.ended == nil else { return nil }
                if let t = s.takers.popLast() { return t }
                s.buffer.append(d)
                if let limit, s.buffer.count - s.head > limit { s.head += 1 }
                Self.compact(&s)
                return nil
            }
            taker?.resume(returning: d)
        }

        func take() -> Taken {
            state.withLock { s in
                if s.head < s.buffer.count { return .delivery(Self.pop(&s)) }
                return s.ended == nil ? .empty : .ended
            }
        }

        func wait(_ c: UnsafeContinuation<Delivery?, Never>) {
            let ready = state.withLock { s -> Delivery?? in
                if s.head < s.buffer.count { return .some(Self.pop(&s)) }
                if s.ended != nil { return .some(nil) }
                s.takers.append(c)
                return .none
            }
            if let ready { c.resume(returning: ready) }
        }

        /// Ends the stream (the first call decides how) and wakes every taker: a finished stream's takers get nil
        /// once nothing is buffered (a waiting taker means nothing is); a cancelled stream drops its buffer.
        func terminate(_ how: Termination) {
            let (takers, handler) = state.withLock { s -> ([UnsafeContinuation<Delivery?, Never>], (@Sendable (Termination) -> Void)?) in
                if how == .cancelled && s.ended != .cancelled {
                    s.buffer.removeAll()
                    s.head = 0
                }
                guard s.ended == nil else { return ([], nil) }
                s.ended = how
                let takers = s.takers
                s.takers.removeAll()
                let handler = s.onTermination
                s.onTermination = nil
                return (takers, handler)
            }
            for t in takers { t.resume(returning: nil) }
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
