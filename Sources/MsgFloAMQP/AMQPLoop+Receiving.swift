import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

/// What librabbitmq decodes of a content header frame (`amqp_frame_t.payload.properties`).
typealias ContentHeaderFrame = amqp_frame_t.__Unnamed_union_payload.__Unnamed_struct_properties

// Reading frames: deliveries (through the DeliveryWindow), confirms, cancels, returns, channel and connection closes;
// writing the window's acks.
extension AMQPLoop {
    // MARK: acknowledgements

    func settleAll(_ c: amqp_connection_state_t) {
        let writes = window.settle(settleBatch, now: .now)
        settleBatch.removeAll(keepingCapacity: true)
        for w in writes where !write(c, w, on: Channel.consume) { return }
    }

    /// Writes the deferred multiple-ack when a consumer it covers runs short of prefetch room, or it is old enough.
    func flushAcksIfDue(_ c: amqp_connection_state_t) {
        if let w = window.flushIfDue(now: .now) { write(c, w, on: Channel.consume) }
    }

    func flushAcks(_ c: amqp_connection_state_t) {
        if let w = window.flush() { write(c, w, on: Channel.consume) }
    }

    /// Writes an ack, nack or reject of the delivery window; false (the connection is lost) when that fails.
    @discardableResult
    func write(_ c: amqp_connection_state_t, _ w: DeliveryWindow.Write, on channel: amqp_channel_t) -> Bool {
        let (rc, what) = switch w {
        case .ack(let tag, let multiple): (amqp_basic_ack(c, channel, tag, multiple ? 1 : 0), "ack")
        case .nack(let tag): (amqp_basic_nack(c, channel, tag, 0, 0), "nack")
        case .reject(let tag): (amqp_basic_reject(c, channel, tag, 1), "reject")
        }
        guard rc == AMQP_STATUS_OK.rawValue else {
            lose("\(what) failed")
            return false
        }
        return true
    }

    // MARK: reading frames

    /// Reads and handles what the broker sent, without blocking. Returns the number of frames handled.
    @discardableResult
    func readFrames(_ c: amqp_connection_state_t, limit: Int) -> Int {
        var limit = limit
        var zero = Glibc.timeval(tv_sec: 0, tv_usec: 0)
        var n = 0
        socketFoundEmpty = false
        defer {
            if conn != nil { amqp_maybe_release_buffers(c) }
            handOverDeliveries()
            releaseConfirmed()
        }
        while n < limit {
            // Past the first frame, take only what librabbitmq already holds: reading an empty socket costs two
            // system calls (recv, then a zero poll) to learn nothing, and the poll we sleep in sees new data as well.
            // (Not with TLS, where poll cannot see what OpenSSL may hold.)
            if n > 0 && plainSocket && amqp_frames_enqueued(c) == 0 && amqp_data_in_buffer(c) == 0 {
                socketFoundEmpty = true
                break
            }
            var frame = amqp_frame_t()
            let rc = amqp_simple_wait_frame_noblock(c, &frame, &zero)
            if rc == AMQP_STATUS_TIMEOUT.rawValue {
                // librabbitmq's recv found nothing more on the socket.
                socketFoundEmpty = plainSocket
                break
            }
            if rc != AMQP_STATUS_OK.rawValue {
                lose(Self.statusText(rc))
                return n
            }
            if n == 0 { lastHeard = .now }
            n += 1
            switch frame.frame_type {
            case UInt8(AMQP_FRAME_METHOD):
                if content.awaitsContent(on: frame.channel) {
                    lose("broker sent a method on channel \(frame.channel) inside a message's content")
                    return n
                }
                handleMethod(c, frame.channel, frame.payload.method)
            case UInt8(AMQP_FRAME_HEADER), UInt8(AMQP_FRAME_BODY):
                // A content frame of the delivery read before it on its channel (content where none waits is a
                // returned message's: skipped). Content frames belong to their deliver: they do not count towards
                // the limit.
                limit += 1
                if content.awaitsContent(on: frame.channel) {
                    let outcome = frame.frame_type == UInt8(AMQP_FRAME_HEADER)
                        ? contentHeader(frame.channel, frame.payload.properties)
                        : content.body(channel: frame.channel, UnsafeRawBufferPointer(
                            start: frame.payload.body_fragment.bytes, count: frame.payload.body_fragment.len))
                    switch outcome {
                    case .incomplete: break
                    case .complete(let item): delivered(c, item)
                    case .violation(let what):
                        lose("broker sent \(what)")
                        return n
                    }
                }
            default:
                break
            }
            if conn == nil { return n }
            if n & 63 == 0 { amqp_maybe_release_buffers(c) }
        }
        return n
    }

    func handOverDeliveries() {
        guard !handOver.isEmpty else { return }
        DeliveryStream.yieldRuns(handOver)
        handOver.removeAll(keepingCapacity: true)
    }

    func handleMethod(_ c: amqp_connection_state_t, _ channel: amqp_channel_t, _ method: amqp_method_t) {
        switch method.id {
        case AMQPMethod.basicDeliver:
            guard let d = method.decoded?.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee else { return }
            deliver(c, channel, d)
        case AMQPMethod.basicAck:
            guard channel == Channel.publish,
                  let a = method.decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee else { return }
            confirm(upTo: a.delivery_tag, multiple: a.multiple != 0)
        case AMQPMethod.basicNack:
            guard channel == Channel.publish,
                  let a = method.decoded?.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee else { return }
            if retriesNacks {
                if nackWarned {
                    confirm(upTo: a.delivery_tag, multiple: a.multiple != 0, refused: true)
                    return
                }
                nackWarned = true
                let last = confirms.message(a.delivery_tag).map {
                    " (the last to '\(SafeText.escape($0.exchange, limit: 80))' key '\(SafeText.escape($0.routingKey, limit: 80))')"
                } ?? ""
                logger.warning("AMQP broker \(url) refused message(s) up to #\(a.delivery_tag)\(last) (basic.nack); publishing them again on a new channel in \(Self.nackPause) (further refusals in this round not logged)")
            } else {
                logger.warning("AMQP broker \(url) refused message(s) up to #\(a.delivery_tag) (basic.nack); they are dropped")
            }
            confirm(upTo: a.delivery_tag, multiple: a.multiple != 0, refused: true)
        case AMQPMethod.basicCancel:
            guard let a = method.decoded?.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee else { return }
            if let id = Self.subscriptionID(a.consumer_tag), let sub = topology.remove(id) {
                logger.warning("AMQP broker \(url) cancelled the consumer of '\(sub.record.queue)' (queue deleted?)")
                sub.record.continuation.finish()
            }
        case AMQPMethod.basicReturn:
            // Only mandatory messages come back; their content frames that follow are skipped by readFrames.
            guard channel == Channel.publish,
                  let r = method.decoded?.assumingMemoryBound(to: amqp_basic_return_t.self).pointee else { return }
            returned.append((Self.string(r.exchange), Self.string(r.routing_key),
                             "\(r.reply_code) \(Self.string(r.reply_text))"))
            if returned.count > 10_000 { returned.removeFirst(returned.count - 10_000) }
        case AMQPMethod.channelClose:
            let p = method.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let code = p?.reply_code ?? 0
            let text = p.map { Self.string($0.reply_text) } ?? "channel closed"
            channelClosed(c, channel, code: code, text: text)
        case AMQPMethod.connectionClose:
            let p = method.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(c, 0, AMQPMethod.connectionCloseOk, &ok)
            lose("broker closed the connection: \(p.map { Self.string($0.reply_text) } ?? "connection.close")")
        case AMQPMethod.connectionBlocked:
            blocked = true
            logger.warning("AMQP broker \(url) blocks publishing (resource alarm); sends are held until it unblocks")
        case AMQPMethod.connectionUnblocked:
            blocked = false
            logger.notice("AMQP broker \(url) accepts publishing again")
        default:
            if let lane = Channel.bindingLane(of: channel) { bindingReplied(lane: lane, method.id) }
        }
    }

    /// A basic.deliver: its content (a header frame, then body frames up to the size the header gives) follows on
    /// its channel.
    func deliver(_ c: amqp_connection_state_t, _ channel: amqp_channel_t, _ d: amqp_basic_deliver_t) {
        content.deliver(channel: channel, tag: d.delivery_tag, redelivered: d.redelivered != 0,
                        subscription: Self.subscriptionID(d.consumer_tag))
    }

    /// A content header: its properties read from librabbitmq's decoded frame, for the assembler.
    func contentHeader(_ channel: amqp_channel_t, _ header: ContentHeaderFrame) -> ContentAssembler.Outcome {
        var properties = ContentAssembler.Properties.absent
        if header.class_id == AMQPMethod.basicClass,
           let decoded = header.decoded?.assumingMemoryBound(to: amqp_basic_properties_t.self) {
            let flags = decoded.pointee._flags
            if flags == AMQPPropertyFlag.deliveryMode {
                properties = .deliveryMode(persistent: decoded.pointee.delivery_mode == 2)
            } else if flags != 0 {
                var skipped = 0
                properties = .full(AMQPPropertyReader.read(decoded.pointee, skipped: &skipped))
                if skipped > 0 { noteSkippedProperties(skipped) }
            }
        }
        return content.header(channel: channel, classID: header.class_id, bodySize: header.body_size,
                              properties: properties)
    }

    /// A delivery read in full: to its consumer (through the window, on the consumer channel).
    func delivered(_ c: amqp_connection_state_t, _ item: IncomingContent) {
        let received = item.message
        let sub = item.subscription.flatMap { topology.record($0) }
        let channel = item.channel, tag = item.tag
        if channel == Channel.consume {
            let verdict = window.delivered(tag: tag, consumer: sub?.id)
            guard let sub, verdict == .accept else {
                // Not ours any more (cancelled): give it back to the queue.
                _ = amqp_basic_reject(c, channel, tag, 1)
                return
            }
            coalescing.delivered(prefetch: sub.prefetch)
            handOver.append((sub.continuation,
                             Delivery(message: received, queue: sub.queue, redelivered: item.redelivered,
                                      tag: tag, generation: generation, settler: settler)))
        } else if let sub {
            coalescing.delivered(prefetch: nil)
            handOver.append((sub.continuation, Delivery(message: received, queue: sub.queue)))
        }
    }

    /// Properties of a delivery that could not be read (bad UTF-8, too long, kinds we do not carry) were left out;
    /// the message itself was delivered. One log line per 10 s at most.
    func noteSkippedProperties(_ n: Int) {
        skippedProperties += n
        let now = ContinuousClock.now
        if skippedPropertiesWarnedAt.map({ now - $0 > .seconds(10) }) ?? true {
            logger.warning("AMQP \(url): \(skippedProperties) message properties or headers left out (not UTF-8, over their size limit, or of a kind not carried); the messages were delivered")
            skippedProperties = 0
            skippedPropertiesWarnedAt = now
        }
    }

    func channelClosed(_ c: amqp_connection_state_t, _ channel: amqp_channel_t, code: UInt16, text: String) {
        var ok = amqp_channel_close_ok_t(dummy: 0)
        _ = amqp_send_method(c, channel, AMQPMethod.channelCloseOk, &ok)
        switch channel {
        case Channel.publish:
            // Typically a send to an exchange that does not exist. The broker dropped everything it got on the
            // channel since; publish those again on a fresh channel, except the ones to the missing exchange.
            // "NOT_FOUND - no exchange 'x' in vhost 'v'", "ACCESS_REFUSED - cannot publish to internal exchange 'x'
            // in vhost 'v'": the messages for that exchange would close the channel again; drop them rather than
            // loop. The name cannot be cut out of the text (it may hold quotes, and the broker truncates its reply
            // text to 255 bytes): the first unconfirmed message whose exchange the text fits is the one refused.
            let outstanding = confirms.takeOutstanding()
            var missing: String? = nil
            // Compared as Unicode scalars: a name may start with a combining mark, which joins the quote before it
            // into one Character, so that a search by Characters would not find "exchange '".
            let scalars = text.unicodeScalars
            if code == 404 || code == 403, let r = scalars.firstRange(of: "exchange '".unicodeScalars) {
                var rest = scalars[r.upperBound...]
                let vhost = "' in vhost '\(url.vhost)'".unicodeScalars
                let complete = scalars.count >= vhost.count && scalars.suffix(vhost.count).elementsEqual(vhost)
                // RabbitMQ cuts a long text to 255 bytes and ends it with "...", maybe in the middle of a character
                // (which then decodes as U+FFFD).
                if !complete {
                    if rest.suffix(3).elementsEqual("...".unicodeScalars) { rest.removeLast(3) }
                    while rest.last == "\u{FFFD}" { rest.removeLast() }
                }
                func fits(_ exchange: String) -> Bool {
                    guard !exchange.isEmpty else { return false }
                    let full = Array(exchange.unicodeScalars) + Array(vhost)
                    return complete ? rest.elementsEqual(full) : full.starts(with: rest)
                }
                missing = outstanding.first { fits($0.exchange) }?.exchange
            }
            if missing == nil && (code == 404 || code == 403) && text == lastPublishRefusal {
                // Refused twice alike and still not recognised: the first message to a named exchange is the one
                // (the default exchange never refuses); dropping it ends the loop.
                missing = outstanding.first { !$0.exchange.isEmpty }?.exchange
            }
            lastPublishRefusal = text
            // "PRECONDITION_FAILED - fast reply consumer does not exist": a request with reply-to
            // amq.rabbitmq.reply-to published while this connection consumes no direct replies (its reply
            // subscription was cancelled, or never made). Published again it would close the channel again, once
            // per turn, for ever: those requests fail instead.
            let noReplyConsumer = code == 406 && text.contains("fast reply consumer does not exist")
                && !topology.consumesDirectReplies
            var again: [Outgoing] = []
            var dropped = 0
            for o in outstanding {
                if let m = missing, o.exchange == m {
                    dropped += 1
                    o.waiter?.resume(.failure(MsgFloError(code == 404 ? .notFound : .accessRefused,
                                                                         "send on \(url) failed: \(code) \(text)")))
                } else if noReplyConsumer, o.properties?.replyTo == AMQPTransport.directReplyTo {
                    dropped += 1
                    o.waiter?.resume(.failure(MsgFloError(.preconditionFailed,
                        "send on \(url) failed: reply-to \(AMQPTransport.directReplyTo) but no reply subscription of this connection is open (\(code) \(text))")))
                } else {
                    again.append(o)
                }
            }
            released += dropped
            logger.warning("AMQP: sending on \(url) failed: \(code) \(text); \(dropped) message(s) dropped")
            resend = again + resend
            _ = reopenPublishChannel(c, close: false)
        case Channel.control:
            reopen(c, channel)
        case _ where Channel.bindingLane(of: channel) != nil:
            bindingRefused(lane: Channel.bindingLane(of: channel)!, code: code, text: text)
            reopen(c, channel)
        default:
            // A consumer channel: start afresh on a new connection so every consumer is set up again.
            lose("broker closed channel \(channel): \(code) \(text)")
        }
    }

    /// Opens the publishing channel again in confirm mode (after closing it when `close`) and restarts the direct
    /// reply-to consumers that lived on it. Nothing may be waiting for a confirm on it. False: the connection is lost.
    func reopenPublishChannel(_ c: amqp_connection_state_t, close: Bool) -> Bool {
        renewPublishing = false
        var r = amqp_rpc_reply_t()
        r.reply_type = AMQP_RESPONSE_NORMAL
        if close { r = amqp_channel_close(c, Channel.publish, Int32(AMQP_REPLY_SUCCESS)) }
        if r.reply_type == AMQP_RESPONSE_NORMAL {
            amqp_channel_open(c, Channel.publish)
            r = amqp_get_rpc_reply(c)
        }
        if r.reply_type == AMQP_RESPONSE_NORMAL {
            amqp_confirm_select(c, Channel.publish)
            r = amqp_get_rpc_reply(c)
        }
        guard r.reply_type == AMQP_RESPONSE_NORMAL else {
            lose("cannot reopen the publishing channel: \(Self.replyText(r))")
            return false
        }
        // Nothing is outstanding on the closed channel; numbering starts over.
        _ = confirms.takeOutstanding()
        // A direct reply-to consumer lived on the closed channel: consume again (calls waiting on the old
        // reply-to time out; new ones use the new consumer).
        for id in topology.publishChannelRenewed() {
            do { try startConsumer(c, id) } catch {
                lose("cannot consume direct replies again after the publishing channel closed")
                return false
            }
        }
        return true
    }
}
