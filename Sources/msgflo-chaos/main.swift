// The driver of Scripts/chaos: numbered messages in, numbered messages out, and what was lost or duplicated.
//
//   msgflo-chaos send    --broker URL --queue Q --count N
//   msgflo-chaos receive --broker URL --queue Q --count N [--bind EXCHANGE] [--idle SECONDS] [--progress FILE]
//
// send: declares Q as an inport, sends {"n": i} for i in 0..<N, closes (AMQP: every send confirmed by the broker;
// MQTT QoS 1: close waits for every PUBACK); prints "sent N" with N the messages the broker confirmed. receive: consumes Q (AMQP: bound to EXCHANGE first;
// MQTT: Q is the topic), acknowledging each message, until all N arrived or nothing came for --idle seconds; writes
// the count of distinct numbers to --progress as it goes; prints "received R distinct D lost L duplicated X".
import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCLI
import MsgFloMQTT
import MsgFloTransports
import Synchronization

struct Options: ParsableArguments {
    enum Mode: String, ExpressibleByArgument, CaseIterable { case send, receive }

    @Argument(help: "send: numbered messages into --queue; receive: count what arrives on it.")
    var mode: Mode
    @OptionGroup var broker: BrokerArgument
    @Option(help: "The queue (MQTT: the topic).")
    var queue: String
    @Option(help: "Messages sent, or expected.")
    var count: Int
    @Option(help: ArgumentHelp("receive, AMQP: bind the queue to this exchange first.", valueName: "EXCHANGE"))
    var bind: String?
    @Option(help: ArgumentHelp("receive: stop when nothing came for this long.", valueName: "SECONDS"))
    var idle: Double = 20
    @Option(help: ArgumentHelp("receive: write the count of distinct numbers to this file as it goes (FILE.stop ends it).",
                               valueName: "FILE"))
    var progress: String?

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
        guard idle > 0, idle.isFinite else { throw ValidationError("--idle must be a positive number of seconds") }
    }
}

let options = CommandMain.parse(Options.self, tool: "msgflo-chaos")
let mode = options.mode
let queue = options.queue
let count = options.count
let idle = options.idle
let bind = options.bind
let progressFile = options.progress
let brokerArgument = options.broker.broker

func number(_ m: Message) -> Int? { m.json?["n"]?.intValue }

func run() async throws {
    let environment = ProcessInfo.processInfo.environment
    let logger = CommandLogging.logger("msgflo-chaos", level: CommandLogging.level(environment, default: .warning))
    let broker = try BrokerURL.resolve(brokerArgument, environment: environment)
    // AMQP: at most 1,000 messages unconfirmed (send waits for room), so that close has little to wait for.
    let transport = try Transports.make(broker, logger: logger, maxOutstanding: 1000)
    try await transport.connect()
    if mode == .send {
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
    if let exchange = bind {
        try await transport.declareOutport(exchange)
        try await transport.addBinding(Binding(.pubsub, src: exchange, tgt: queue))
    }
    let seen = Mutex<(bits: [Bool], distinct: Int, total: Int, last: ContinuousClock.Instant)>(
        (Array(repeating: false, count: count), 0, 0, .now))
    let sub = try await transport.consume(queue, options: ConsumeOptions(prefetch: 100))
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    let progress = progressFile
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

do { try await run() } catch { CommandMain.fail("msgflo-chaos", "\(error)") }
