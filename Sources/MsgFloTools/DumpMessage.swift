import MsgFlo

/// `msgflo-dump-message`: reads messages from a queue and prints them as JSON.
///
/// What `--queue Q` reads:
/// - MQTT: topic `Q`.
/// - AMQP, when a queue `Q` exists (an inport): that queue, with prefetch 1, each message acknowledged, as msgflo
///   does. The messages are taken from it (a participant consuming `Q` competes for them).
/// - AMQP, when no queue `Q` exists (an outport is only a fanout exchange): a private temporary queue bound to
///   exchange `Q`, so every message the participant sends from then on is shown, and nobody else loses any.
package enum DumpMessage {
    package enum Source: String, Sendable, Equatable {
        /// Consuming the queue (or MQTT topic) itself.
        case queue
        /// A temporary queue bound to the outport's exchange.
        case outportTap = "outport"
    }

    /// Opens the subscription for `queue` as described above.
    /// A name that is neither a queue nor an exchange fails at once, naming near matches, unless `create` (then it
    /// is declared as an outport exchange, as the participant would declare it, and the tap waits on it).
    package static func open(_ queue: String, on transport: any Transport,
                            create: Bool = false) async throws -> (Subscription, Source) {
        if transport.capabilities.contains(.queueDepth) {
            let exists: Bool
            do {
                _ = try await transport.queueDepth(queue)
                exists = true
            } catch let error as MsgFloError where error.code == .notFound {
                exists = false
            }
            if !exists {
                if !create, try await transport.exchangeExists(queue) == false {
                    let near = await NearMatches.existing(queue, on: transport)
                    throw ToolFailure("no queue or exchange '\(queue)' on \(transport.broker): nothing to read "
                                      + "(--create declares it as an outport and waits)" + NearMatches.suffix(near))
                }
                return (try await transport.subscribeData(queue), .outportTap)
            }
        }
        return (try await transport.consume(queue, options: ConsumeOptions(prefetch: 1)), .queue)
    }

    /// Reads `amount` messages (nil: until the subscription ends) and prints them: with `follow`, each on its own
    /// line as it comes; otherwise, as msgflo does, the one message, or a JSON array of them all, once all are in.
    package static func run(_ subscription: Subscription, amount: Int?, follow: Bool,
                           print: (String) -> Void) async throws {
        var collected: [String] = []
        var count = 0
        for await delivery in subscription {
            delivery.ack()
            let text = JSONText.display(delivery.message)
            count += 1
            if follow {
                print(text)
            } else {
                collected.append(text)
            }
            if let amount, count >= amount { break }
        }
        if let amount, count < amount {
            if !follow { flush(collected, amount: amount, print: print) }
            throw ToolFailure("the subscription to '\(subscription.queue)' ended after \(count) of \(amount) message(s)")
        }
        if !follow { flush(collected, amount: amount ?? count, print: print) }
    }

    static func flush(_ collected: [String], amount: Int, print: (String) -> Void) {
        guard !collected.isEmpty else { return }
        if amount == 1 {
            print(collected[0])
        } else {
            print("[" + collected.joined(separator: ",") + "]")
        }
    }
}
