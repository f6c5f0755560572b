import MsgFlo
import Synchronization

/// One connected protocol client: what goes out to it waits in its own queue, written by its connection's task.
///
/// Slow clients: replies and graph changes always queue; data events (`network:data`, `runtime:packet`,
/// `network:output`, `network:processerror`) are dropped, and counted, while more than `dataLimit` frames wait for
/// the client.
package final class RuntimeClient: Sendable, Hashable {
    package let id: Int
    package let outbox: AsyncStream<String>
    let continuation: AsyncStream<String>.Continuation
    let waiting = Atomic<Int>(0)
    let droppedCount = Atomic<Int>(0)
    let dataLimit: Int
    /// `network:edges`: the edges this client watches (keys as ``FBPRuntime/edgeKey``); nil: all of them.
    let watched = Mutex<Set<String>?>(nil)

    init(id: Int, dataLimit: Int) {
        self.id = id
        self.dataLimit = dataLimit
        (outbox, continuation) = AsyncStream<String>.makeStream()
    }

    /// Frames dropped for this client because it read too slowly.
    package var dropped: Int { droppedCount.load(ordering: .relaxed) }

    func send(_ text: String, droppable: Bool = false) {
        if droppable && waiting.load(ordering: .relaxed) >= dataLimit {
            droppedCount.add(1, ordering: .relaxed)
            return
        }
        waiting.add(1, ordering: .relaxed)
        continuation.yield(text)
    }

    /// The connection wrote one frame.
    package func written() { waiting.subtract(1, ordering: .relaxed) }

    func finish() { continuation.finish() }

    package static func == (a: RuntimeClient, b: RuntimeClient) -> Bool { a.id == b.id }
    package func hash(into h: inout Hasher) { h.combine(id) }
}
