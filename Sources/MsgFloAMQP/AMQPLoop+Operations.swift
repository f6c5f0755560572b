import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

// The operations callers await: declarations, bindings, consumers, queue lookups.
extension AMQPLoop {
    // MARK: operations

    func runOps(_ c: amqp_connection_state_t) {
        var i = 0
        while i < opBatch.count {
            if opBatch[i].op.pipelined != nil {
                // A run of binds and unbinds: written together, answered together (one round trip, not one each).
                var j = i + 1
                while j < opBatch.count, j - i < Self.pipelineLimit, opBatch[j].op.pipelined != nil { j += 1 }
                let unanswered = runPipelined(c, opBatch[i..<j])
                if conn == nil {
                    // Not done: those not answered, then the rest, wait for the next connection.
                    let rest = unanswered + opBatch[j...]
                    core.shared.withLock { s in s.ops.insert(contentsOf: rest, at: 0) }
                    opBatch.removeAll(keepingCapacity: true)
                    return
                }
                i = j
                continue
            }
            let q = opBatch[i]
            do {
                let result = try execute(c, q.op)
                q.pending.resume(.success(result))
            } catch .connectionLost(let why) {
                lose(why)
                // Not done: the rest (this one included) waits for the next connection.
                let rest = Array(opBatch[i...])
                core.shared.withLock { s in s.ops.insert(contentsOf: rest, at: 0) }
                opBatch.removeAll(keepingCapacity: true)
                return
            } catch {
                q.pending.resume(.failure(error.asMsgFloError(q.op.summary, url)))
            }
            i += 1
            // Keep the socket drained between operations (a long list of declarations must not stall deliveries).
            readFrames(c, limit: 256)
            if conn == nil {
                let rest = Array(opBatch[i...])
                core.shared.withLock { s in s.ops.insert(contentsOf: rest, at: 0) }
                opBatch.removeAll(keepingCapacity: true)
                return
            }
        }
        opBatch.removeAll(keepingCapacity: true)
    }

    func execute(_ c: amqp_connection_state_t, _ op: Op) throws(CallError) -> OpResult {
        switch op {
        case .declareInport, .declareOutport, .declareDiscovery, .declareQuorumInport, .bind:
            try apply(c, op)
            topology.record(op)
        case .holdExclusive(let q):
            do {
                try call(c) { amqp_queue_declare(c, Channel.control, $0(q), 0, 0, 1, 1, amqp_empty_table) }
            } catch .channel(let code, _) where code == 405 {
                return .exists(false)  // RESOURCE_LOCKED: another connection holds it
            }
            return .exists(true)
        case .unbind(let b):
            topology.forget(b)
            try call(c) {
                amqp_queue_unbind(c, Channel.control, $0(b.tgt), $0(Op.boundExchange(b)), $0(""), amqp_empty_table)
            }
        case .consume(let id):
            do {
                try startConsumer(c, id)
            } catch {
                _ = topology.remove(id)
                _ = window.removeConsumer(id)
                throw error
            }
        case .cancel(let id):
            try stopConsumer(c, id)
        case .depth(let q):
            return .depth(try queueDeclare(c, q, passive: true, durable: false, autoDelete: false, deadLetter: nil))
        case .stats(let q):
            var messages = 0, consumers = 0
            try call(c) { b in
                let ok = amqp_queue_declare(c, Channel.control, b(q), 1, 0, 0, 0, amqp_empty_table)
                if let ok {
                    messages = Int(ok.pointee.message_count)
                    consumers = Int(ok.pointee.consumer_count)
                }
                return ok
            }
            return .stats(messages: messages, consumers: consumers)
        case .exchangeExists(let x):
            do {
                try call(c) {
                    amqp_exchange_declare(c, Channel.control, $0(x), $0("fanout"), 1, 0, 0, 0, amqp_empty_table)
                }
            } catch .channel(let code, _) where code == 404 {
                return .exists(false)
            }
            return .exists(true)
        }
        return .done
    }

    /// Makes a declaration or binding (an ``Op`` that ``Op/isRestored``; any other does nothing here).
    func apply(_ c: amqp_connection_state_t, _ op: Op) throws(CallError) {
        switch op {
        case .declareInport(let q, let persistent):
            try tolerant("queue", q) { () throws(CallError) in
                _ = try queueDeclare(c, q, passive: false, durable: persistent, autoDelete: !persistent,
                                     deadLetter: "dead-" + q)
            } passive: { () throws(CallError) in
                _ = try queueDeclare(c, q, passive: true, durable: false, autoDelete: false, deadLetter: nil)
            }
            try tolerant("exchange", q) { () throws(CallError) in
                try exchangeDeclare(c, q, type: "fanout", durable: persistent, autoDelete: !persistent)
            } passive: {}
            try call(c) { amqp_queue_bind(c, Channel.control, $0(q), $0(q), $0(""), amqp_empty_table) }
        case .declareQuorumInport(let q):
            do {
                _ = try queueDeclare(c, q, passive: false, durable: true, autoDelete: false, deadLetter: "dead-" + q,
                                     quorum: true)
            } catch .channel(let code, let text) where code == 406 {
                // An existing queue of another type (or other arguments): RabbitMQ cannot change it in place.
                let vhost = settings.url.vhost
                throw .channel(code: code, text: "queue '\(q)' exists with other arguments than a quorum queue's (\(text)). "
                               + "A queue's type cannot change: drain it, delete it (rabbitmqctl delete_queue '\(q)' -p '\(vhost)') "
                               + "and start the participant again, or use it as it is by leaving out queue-type=quorum")
            }
            try tolerant("exchange", q) { () throws(CallError) in
                try exchangeDeclare(c, q, type: "fanout", durable: true, autoDelete: false)
            } passive: {}
            try call(c) { amqp_queue_bind(c, Channel.control, $0(q), $0(q), $0(""), amqp_empty_table) }
        case .declareOutport(let q, let persistent):
            try tolerant("exchange", q) { () throws(CallError) in
                try exchangeDeclare(c, q, type: "fanout", durable: persistent, autoDelete: !persistent)
            } passive: {}
        case .declareDiscovery:
            try tolerant("queue", discoveryQueue) { () throws(CallError) in
                _ = try queueDeclare(c, discoveryQueue, passive: false, durable: true, autoDelete: false, deadLetter: nil)
            } passive: { () throws(CallError) in
                _ = try queueDeclare(c, discoveryQueue, passive: true, durable: false, autoDelete: false, deadLetter: nil)
            }
        case .bind(let b):
            switch b.kind {
            case .pubsub:
                try call(c) { amqp_queue_bind(c, Channel.control, $0(b.tgt), $0(b.src), $0(""), amqp_empty_table) }
            case .roundRobin:
                let direct = "out-" + b.src
                try tolerant("exchange", direct) { () throws(CallError) in
                    try exchangeDeclare(c, direct, type: "direct", durable: true, autoDelete: false)
                } passive: {}
                try call(c) { amqp_exchange_bind(c, Channel.control, $0(direct), $0(b.src), $0(""), amqp_empty_table) }
                try call(c) { amqp_queue_bind(c, Channel.control, $0(b.tgt), $0(direct), $0(""), amqp_empty_table) }
            case .deadLetter:
                let dead = "dead-" + b.src
                try tolerant("exchange", dead) { () throws(CallError) in
                    try exchangeDeclare(c, dead, type: "fanout", durable: true, autoDelete: false)
                } passive: {}
                try call(c) { amqp_queue_bind(c, Channel.control, $0(b.tgt), $0(dead), $0(""), amqp_empty_table) }
            }
        case .holdExclusive, .unbind, .consume, .cancel, .depth, .stats, .exchangeExists:
            break  // not a declaration: nothing to make (execute runs these)
        }
    }

    /// Runs a declaration; when the broker refuses it because the thing exists with other flags (406), warns once
    /// and goes on with the existing one (checked with `passive`).
    func tolerant(_ kind: String, _ name: String, _ declare: () throws(CallError) -> Void,
                          passive: () throws(CallError) -> Void) throws(CallError) {
        do {
            try declare()
        } catch .channel(let code, let text) where code == 406 {
            logger.warning("AMQP: \(kind) '\(name)' exists on \(url) with other flags than msgflo's (\(text)); using it as it is")
            try passive()
        }
    }

    func queueDeclare(_ c: amqp_connection_state_t, _ q: String, passive: Bool, durable: Bool,
                              autoDelete: Bool, deadLetter: String?, quorum: Bool = false) throws(CallError) -> Int {
        var count = 0
        try call(c) { b in
            var args = amqp_empty_table
            var entries = [amqp_table_entry_t](repeating: amqp_table_entry_t(), count: 2)
            var n = 0
            if let deadLetter {
                entries[n].key = b("x-dead-letter-exchange")
                entries[n].value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                entries[n].value.value.bytes = b(deadLetter)
                n += 1
            }
            if quorum {
                entries[n].key = b("x-queue-type")
                entries[n].value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                entries[n].value.value.bytes = b("quorum")
                n += 1
            }
            return entries.withUnsafeMutableBufferPointer { e in
                if n > 0 { args = amqp_table_t(num_entries: Int32(n), entries: e.baseAddress) }
                let ok = amqp_queue_declare(c, Channel.control, b(q), passive ? 1 : 0, durable ? 1 : 0, 0,
                                            autoDelete ? 1 : 0, args)
                if let ok { count = Int(ok.pointee.message_count) }
                return ok
            }
        }
        return count
    }

    func exchangeDeclare(_ c: amqp_connection_state_t, _ name: String, type: String, durable: Bool,
                                 autoDelete: Bool) throws(CallError) {
        try call(c) {
            amqp_exchange_declare(c, Channel.control, $0(name), $0(type), 0, durable ? 1 : 0, autoDelete ? 1 : 0, 0,
                                  amqp_empty_table)
        }
    }

    func startConsumer(_ c: amqp_connection_state_t, _ id: Int) throws(CallError) {
        guard let sub = topology.consumers[id], !sub.started else { return }
        let r = sub.record
        var tapQueue: String? = nil
        let tag = "msgflo-\(id)"
        if r.directReplyTo {
            try call(c, on: Channel.publish) {
                amqp_basic_consume(c, Channel.publish, $0(r.queue), $0(tag), 0, 1, 0, amqp_empty_table)
            }
        } else if r.isTap {
            try tolerant("exchange", r.queue) { () throws(CallError) in
                try exchangeDeclare(c, r.queue, type: "fanout", durable: true, autoDelete: false)
            } passive: {}
            var name = ""
            try call(c) { b in
                let ok = amqp_queue_declare(c, Channel.control, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table)
                if let ok { name = Self.string(ok.pointee.queue) }
                return ok
            }
            try call(c) { amqp_queue_bind(c, Channel.control, $0(name), $0(r.queue), $0(""), amqp_empty_table) }
            try call(c, on: Channel.tap) { amqp_basic_consume(c, Channel.tap, $0(name), $0(tag), 0, 1, 1, amqp_empty_table) }
            tapQueue = name
        } else {
            // Check first on the control channel: a consume of a missing queue would close the consumer channel.
            _ = try queueDeclare(c, r.queue, passive: true, durable: false, autoDelete: false, deadLetter: nil)
            try call(c, on: Channel.consume) { _ in amqp_basic_qos(c, Channel.consume, 0, UInt16(clamping: r.prefetch), 0) }
            window.addConsumer(id, prefetch: r.prefetch)
            try call(c, on: Channel.consume) { amqp_basic_consume(c, Channel.consume, $0(r.queue), $0(tag), 0, 0, 0, amqp_empty_table) }
        }
        topology.started(id, tapQueue: tapQueue)
    }

    func stopConsumer(_ c: amqp_connection_state_t, _ id: Int) throws(CallError) {
        guard let sub = topology.remove(id) else { return }
        defer { sub.record.continuation.finish() }
        // What the consumer held and did not settle goes back to the queue.
        let rejects = window.removeConsumer(id)
        guard sub.started else { return }
        let ch = sub.record.directReplyTo ? Channel.publish : sub.record.isTap ? Channel.tap : Channel.consume
        try call(c, on: ch) { amqp_basic_cancel(c, ch, $0("msgflo-\(id)")) }
        for w in rejects where !write(c, w, on: ch) { throw .connectionLost("reject failed") }
    }
}
