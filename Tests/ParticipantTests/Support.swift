import Foundation
import MsgFlo
import MsgFloParticipant
import Synchronization
import TestSupport
import Testing

typealias Collector = MessageCollector

extension MessageCollector {
    /// A queue bound to outport `outport` (declared here), collected.
    static func outport(_ outport: String, on t: any Transport) async throws -> MessageCollector {
        let q = "test.\(outport).\(UInt32.random(in: 0...UInt32.max))"
        try await t.declareInport(q)
        try await t.declareOutport(outport)
        try await t.addBinding(Binding(src: outport, tgt: q))
        return MessageCollector(try await t.consume(q, options: ConsumeOptions(prefetch: 100)))
    }

    static func queue(_ q: String, on t: any Transport) async throws -> MessageCollector {
        try await t.declareInport(q)
        return MessageCollector(try await t.consume(q, options: ConsumeOptions(prefetch: 100)))
    }
}

/// A gate handlers wait on until the test opens it.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func wait() async {
        await withCheckedContinuation { c in
            let now = state.withLock { s in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
    func open() {
        let ws = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in ws { w.resume() }
    }
}

func connected(_ broker: InMemoryBroker = InMemoryBroker(), scheme: BrokerURL.Scheme = .amqp) async throws -> InMemoryTransport {
    let t = InMemoryTransport(broker: broker, url: BrokerURL(scheme: scheme, host: "in-memory"))
    try await t.connect()
    return t
}
