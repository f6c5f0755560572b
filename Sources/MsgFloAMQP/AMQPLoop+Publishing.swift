import CRabbitMQ
import Foundation
import Glibc
import Logging
import MsgFlo
import MsgFloIOThread

// Publishing with confirms (PublisherConfirms), nack retries, returned messages, and room for waiting senders.
extension AMQPLoop {
    // MARK: publishing

    /// Publishes the resend list then the batch. Returns false when the connection was lost.
    func publishAll(_ c: amqp_connection_state_t) -> Bool {
        if !resend.isEmpty {
            let list = resend
            resend = []
            for (i, o) in list.enumerated() where !publishOne(c, o) {
                resend = Array(list[i...]) + publishBatch
                publishBatch.removeAll(keepingCapacity: true)
                return false
            }
        }
        for i in publishBatch.indices where !publishOne(c, publishBatch[i]) {
            resend.append(contentsOf: publishBatch[i...])
            publishBatch.removeAll(keepingCapacity: true)
            return false
        }
        publishBatch.removeAll(keepingCapacity: true)
        return true
    }

    func publishOne(_ c: amqp_connection_state_t, _ o: Outgoing) -> Bool {
        let rc = o.exchange.withCString { ex in
            o.routingKey.withCString { rk in
                o.body.withUnsafeBytes { body in
                    let bytes = amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress))
                    let mandatory: amqp_boolean_t = o.waiter == nil ? 0 : 1
                    guard o.expiration != nil || o.properties != nil else {
                        return amqp_basic_publish(c, Channel.publish, amqp_cstring_bytes(ex), amqp_cstring_bytes(rk),
                                                  mandatory, 0, &properties, bytes)
                    }
                    propertyArena.reset()
                    var props = propertyArena.basicProperties(properties, o.properties, expiration: o.expiration)
                    return amqp_basic_publish(c, Channel.publish, amqp_cstring_bytes(ex), amqp_cstring_bytes(rk),
                                              mandatory, 0, &props, bytes)
                }
            }
        }
        if CallError.isArgumentStatus(rc) {
            // Nothing was written (the frame could not be encoded): drop this one message, keep the connection.
            // The transport checks names before they are queued, so this is a last line of defence.
            logger.warning("AMQP: message to exchange '\(o.exchange.prefix(60))' routing key '\(o.routingKey.prefix(60))' on \(url) dropped: \(Self.statusText(rc))")
            o.waiter?.resume(.failure(MsgFloError(.invalidArgument, "send on \(url) refused by librabbitmq: \(Self.statusText(rc))")))
            released += 1
            return true
        }
        if rc != AMQP_STATUS_OK.rawValue {
            lose("publish failed: \(Self.statusText(rc))")
            return false
        }
        confirms.published(o)
        return true
    }

    func confirm(upTo tag: UInt64, multiple: Bool, refused: Bool = false) {
        let retry = refused && retriesNacks
        var any = false
        confirms.confirm(tag, multiple: multiple) { o in
            any = true
            if retry {
                // Still outstanding: published again after a pause (a cluster's queue between leaders nacks).
                nacked.append(o)
                return
            }
            released += 1
            if o.waiter != nil { verdict(o, refused: refused) }
        }
        guard any else { return }  // duplicate, late or unknown: nothing changes
        if !refused { nackRounds = 0 }
        if retry {
            if nackRetryAt == nil { nackRetryAt = .now + Self.nackPause }
            renewPublishing = true
        }
    }

    static let nackPause: Duration = .milliseconds(500)
    static let maxNackRounds = 120
    var retriesNacks: Bool {
        (!settings.url.alternates.isEmpty || settings.queueType == .quorum) && nackRounds < Self.maxNackRounds
    }

    /// Moves nacked messages whose pause is over to the front of the resend list.
    func retryNackedIfDue() {
        guard let at = nackRetryAt, ContinuousClock.now >= at else { return }
        nackRetryAt = nil
        nackRounds += 1
        nackWarned = false
        resend = nacked + resend
        nacked.removeAll()
    }

    /// Tells the caller of a mandatory publish what became of it.
    func verdict(_ o: Outgoing, refused: Bool) {
        if let i = returned.firstIndex(where: { $0.exchange == o.exchange && $0.routingKey == o.routingKey }) {
            let r = returned.remove(at: i)
            let target = o.exchange.isEmpty ? "no queue '\(o.routingKey)'" : "exchange '\(o.exchange)' routes it to no queue"
            o.waiter?.resume(.failure(MsgFloError(.notFound, "\(target) on \(url) (\(r.text))")))
        } else if refused {
            o.waiter?.resume(.failure(MsgFloError(.protocolError, "the broker \(url) refused the message (basic.nack)")))
        } else {
            o.waiter?.resume(.success(()))
        }
    }

    /// Gives the room of confirmed messages back to waiting senders.
    func releaseConfirmed() {
        guard released > 0 else { return }
        let n = released
        released = 0
        let limit = settings.maxOutstanding
        let waiters = core.shared.withLock { s -> [Pending<Void>] in
            s.outstanding -= n
            guard !s.spaceWaiters.isEmpty, s.outstanding < limit else { return [] }
            let room = limit - s.outstanding
            let k = min(room, s.spaceWaiters.count)
            let woken = s.spaceWaiters.prefix(k).map(\.pending)
            s.spaceWaiters.removeFirst(k)
            return woken
        }
        for w in waiters { w.resume(.success(())) }
    }
}
