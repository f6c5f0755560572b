import CRabbitMQ
import Glibc
import MsgFlo

// Binds and unbinds, pipelined: written back to back on the binding channels, their answers read as they come.
extension AMQPLoop {
    /// At most this many calls written before their answers are read.
    static let pipelineLimit = 1000

    /// Binds and unbinds (``Op/pipelined``) written back to back, spread over the binding channels (the same
    /// binding always on the same one, so that its bind and unbind keep their order), and their answers read as they
    /// come, with whatever else the broker sends meanwhile (deliveries, confirms). The broker works on each channel
    /// in order but on the channels side by side. Returns once every call is answered, each waiter resumed with its
    /// own result; or when the connection is lost, with the calls not answered, oldest first, for the next
    /// connection. A refusal closes its channel: the refused call fails with the broker's reply, and the calls after
    /// it on that channel, which the broker ignored, are written again once it is open again (``ControlPipeline``).
    func runPipelined(_ c: amqp_connection_state_t, _ ops: ArraySlice<QueuedOp>) -> [QueuedOp] {
        if !openBindingChannels(c) { return Array(ops) }
        bindingAgain = Array(ops)
        while !bindingAgain.isEmpty {
            let batch = bindingAgain
            bindingAgain = []
            let corked = batch.count > 1 && Self.cork(c, true)
            for (k, q) in batch.enumerated() {
                let m = q.op.pipelined!
                let lane = Channel.bindingLane(queue: m.queue, exchange: m.exchange)
                let rc = writeBindingMethod(c, on: Channel.binding(lane), method: m.method, queue: m.queue,
                                            exchange: m.exchange)
                if rc == AMQP_STATUS_OK.rawValue {
                    bindingLanes[lane].wrote(q, expecting: m.reply)
                } else if CallError.isArgumentStatus(rc) {
                    // Not encoded, nothing written: this call fails alone, as a synchronous call would.
                    finishBinding(q, .invalid(Self.statusText(rc)))
                } else {
                    lose("\(q.op.summary) failed: \(Self.statusText(rc))")
                    return takeUnanswered() + batch[k...]
                }
            }
            if corked { _ = Self.cork(c, false) }
            var heard = ContinuousClock.now
            while bindingsOutstanding > 0 {
                let before = bindingsOutstanding
                let frames = readFrames(c, limit: 256)
                if conn == nil { return takeUnanswered() }
                if bindingsOutstanding != before { heard = .now }
                if bindingsOutstanding == 0 { break }
                if frames > 0 && !socketFoundEmpty { continue }
                // Wait for more.
                let left = settings.timeouts.operation - (ContinuousClock.now - heard)
                if left <= .zero {
                    lose("no answer to \(bindingsOutstanding) bind(s) or unbind(s) within \(settings.timeouts.operation)")
                    return takeUnanswered()
                }
                if core.executor.pending {
                    core.executor.runPending()
                } else {
                    io.wait(socket: amqp_get_sockfd(c), limit: min(left, .milliseconds(250)))
                }
            }
        }
        return []
    }

    /// Calls written on the binding channels and not answered yet.
    var bindingsOutstanding: Int { bindingLanes.reduce(0) { $0 + $1.count } }

    /// Opens the binding channels once per connection; false when the connection is lost.
    func openBindingChannels(_ c: amqp_connection_state_t) -> Bool {
        guard !bindingChannelsOpen else { return true }
        for lane in 0..<Channel.bindingLanes {
            do { try reopenChecked(c, Channel.binding(lane)) } catch {
                lose("cannot open channel \(Channel.binding(lane))")
                return false
            }
        }
        bindingChannelsOpen = true
        return true
    }

    /// Writes one queue.bind or queue.unbind without waiting for its answer.
    func writeBindingMethod(_ c: amqp_connection_state_t, on channel: amqp_channel_t, method: UInt32, queue: String,
                            exchange: String) -> Int32 {
        var queue = queue, exchange = exchange
        return queue.withUTF8 { q in
            exchange.withUTF8 { x in
                let qb = amqp_bytes_t(len: q.count, bytes: UnsafeMutableRawPointer(mutating: q.baseAddress))
                let xb = amqp_bytes_t(len: x.count, bytes: UnsafeMutableRawPointer(mutating: x.baseAddress))
                if method == ControlMethod.queueBind {
                    var m = amqp_queue_bind_t(ticket: 0, queue: qb, exchange: xb, routing_key: amqp_empty_bytes,
                                              nowait: 0, arguments: amqp_empty_table)
                    return amqp_send_method(c, channel, method, &m)
                }
                var m = amqp_queue_unbind_t(ticket: 0, queue: qb, exchange: xb, routing_key: amqp_empty_bytes,
                                            arguments: amqp_empty_table)
                return amqp_send_method(c, channel, method, &m)
            }
        }
    }

    /// A method (not channel.close) on binding channel `lane`.
    func bindingReplied(lane: Int, _ method: amqp_method_number_t) {
        switch bindingLanes[lane].replied(method) {
        case .done(let q): finishBinding(q, nil)
        case .stray: break  // nothing written there: not an answer of ours
        case .unexpected(let m): lose("unexpected method \(m) on channel \(Channel.binding(lane))")
        }
    }

    /// The broker closed binding channel `lane`: the oldest call written there is the one it refused; the later
    /// ones go out again once the channel is open again.
    func bindingRefused(lane: Int, code: UInt16, text: String) {
        let (refused, unanswered) = bindingLanes[lane].channelClosed()
        if let refused { finishBinding(refused, .channel(code: code, text: text)) }
        bindingAgain += unanswered
    }

    /// The calls not answered when the connection was lost.
    func takeUnanswered() -> [QueuedOp] {
        var out: [QueuedOp] = []
        for lane in bindingLanes.indices { out += bindingLanes[lane].connectionLost() }
        out += bindingAgain
        bindingAgain = []
        return out
    }

    /// A pipelined call answered: its effect on what is restored after a reconnect, and its waiter's result (an
    /// error reported as the same call made alone would report it).
    func finishBinding(_ q: QueuedOp, _ error: CallError?) {
        switch q.op {
        case .bind where error == nil: topology.record(q.op)
        case .unbind(let b): topology.forget(b)
        default: break
        }
        if let error {
            q.pending.resume(.failure(error.asMsgFloError(q.op.summary, url)))
        } else {
            q.pending.resume(.success(.done))
        }
    }
}
