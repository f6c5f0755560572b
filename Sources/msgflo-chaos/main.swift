// The driver of Scripts/chaos: numbered messages in, numbered messages out, and what was lost or duplicated.
//
//   msgflo-chaos send    --broker URL --queue Q --count N
//   msgflo-chaos receive --broker URL --queue Q --count N [--bind EXCHANGE] [--idle SECONDS] [--progress FILE]
//
// send: declares Q as an inport, sends {"n": i} for i in 0..<N, closes (AMQP: every send confirmed by the broker;
// MQTT QoS 1: close waits for every PUBACK); prints "sent N" with N the messages the broker confirmed. receive: consumes Q (AMQP: bound to EXCHANGE first;
// MQTT: Q is the topic), acknowledging each message, until all N arrived or nothing came for --idle seconds; writes
// the count of distinct numbers to --progress as it goes; prints "received R distinct D lost L duplicated X".
import Foundation
import Logging
import MsgFlo
import MsgFloMQTT
import MsgFloTransports
import Synchronization

func fail(_ why: String) -> Never {
    FileHandle.standardError.write(Data("msgflo-chaos: \(why)\n".utf8))
    exit(2)
}

var args = CommandLine.arguments.dropFirst()
guard let mode = args.popFirst(), mode == "send" || mode == "receive" else { fail("usage: msgflo-chaos send|receive …") }
func parse(_ args: ArraySlice<String>) -> [String: String] {
    var args = args
    var options: [String: String] = [:]
    while let flag = args.popFirst() {
        guard let value = args.popFirst() else { fail("\(flag) needs a value") }
        options[flag] = value
    }
    return options
}
let options = parse(args)
guard let brokerText = options["--broker"], let queue = options["--queue"], let count = Int(options["--count"] ?? "") else {
    fail("--broker, --queue and --count are required")
}
let idle = Double(options["--idle"] ?? "20") ?? 20

func number(_ m: Message) -> Int? { m.json?["n"]?.intValue }

func run() async throws {
    var logger = Logger(label: "msgflo-chaos")
    logger.logLevel = .warning
    let broker = try BrokerURL(parsing: brokerText)
    // AMQP: at most 1,000 messages unconfirmed (send waits for room), so that close has little to wait for.
    let transport = try Transports.make(broker, logger: logger, maxOutstanding: 1000)
    try await transport.connect()
    if mode == "send" {
        // AMQP: the queue must exist before anything is sent to it (else the broker drops it). MQTT: a declaration
        // would subscribe the sender's own session to what it sends.
        if transport.capabilities.contains(.queuesHoldMessages) { try await transport.declareInport(queue) }
        var sent = 0
        for i in 0..<count {
            try await transport.send(toInport: queue, Message(json: ["n": .int(i)]))
            sent += 1
        }
        // Close waits for the broker's confirmations (AMQP publisher confirms, MQTT PUBACKs); what it gives up on is
        // logged by the transport ("closed with N message(s) not confirmed"), and Scripts/chaos subtracts it.
        let mqtt = transport as? MQTTTransport
        await transport.close()
        print("sent \(sent - (mqtt?.unconfirmedPublishes ?? 0))")
        return
    }
    try await transport.declareInport(queue)
    if let exchange = options["--bind"] {
        try await transport.declareOutport(exchange)
        try await transport.addBinding(Binding(.pubsub, src: exchange, tgt: queue))
    }
    let seen = Mutex<(bits: [Bool], distinct: Int, total: Int, last: ContinuousClock.Instant)>(
        (Array(repeating: false, count: count), 0, 0, .now))
    let sub = try await transport.consume(queue, options: ConsumeOptions(prefetch: 100))
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    let progress = options["--progress"]
    let reader = Task {
        for await d in sub {
            if let n = number(d.message), n >= 0, n < count {
                seen.withLock { s in
                    s.total += 1
                    s.last = .now
                    if !s.bits[n] { s.bits[n] = true; s.distinct += 1 }
                }
            }
            d.ack()
        }
    }
    var written = -1
    while true {
        try await Task.sleep(for: .milliseconds(100))
        let (distinct, last) = seen.withLock { ($0.distinct, $0.last) }
        if let progress, distinct != written {
            try? "\(distinct)\n".write(toFile: progress, atomically: true, encoding: .utf8)
            written = distinct
        }
        if distinct >= count { break }
        if ContinuousClock.now - last > .seconds(idle) { break }
        if FileManager.default.fileExists(atPath: (progress ?? "/nonexistent") + ".stop") { break }
    }
    await sub.cancel()
    reader.cancel()
    let s = seen.withLock { $0 }
    await transport.close()
    print("received \(s.total) distinct \(s.distinct) lost \(count - s.distinct) duplicated \(s.total - s.distinct)")
}

do { try await run() } catch { fail("\(error)") }
