import MsgFlo
import Synchronization

/// Counts the times a transport reports `.reconnecting`: a test that must not cost the connection expects 0.
public final class ReconnectCounter: Sendable {
    final class Box: Sendable { let n = Atomic<Int>(0) }
    let box = Box()
    let task: Task<Void, Never>

    public init(_ t: any Transport) {
        let box = self.box
        let updates = t.stateUpdates()
        task = Task {
            for await s in updates { if case .reconnecting = s { box.n.add(1, ordering: .relaxed) } }
        }
    }

    public var value: Int { box.n.load(ordering: .relaxed) }
    deinit { task.cancel() }
}
