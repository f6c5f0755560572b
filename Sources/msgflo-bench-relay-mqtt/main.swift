// msgflo-bench-relay-mqtt --broker URL --in TOPIC --out TOPIC
//
// The relay participant of the throughput benchmark, on MsgFloMQTT: consumes IN and sends every message, unchanged,
// to OUT, until killed. Compare it with ../shared/bench/mqtt_bench.c's C relay, driven by the same `mqtt_bench drive`.
import Foundation
import MsgFlo
import MsgFloMQTT

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: msgflo-bench-relay-mqtt --broker URL --in TOPIC --out TOPIC\n".utf8))
    exit(2)
}

var arguments: [String: String] = [:]
var rest = CommandLine.arguments.dropFirst()
while let key = rest.popFirst() {
    guard ["--broker", "--in", "--out"].contains(key), let value = rest.popFirst() else { usage() }
    arguments[key] = value
}
guard let inTopic = arguments["--in"], let outTopic = arguments["--out"] else { usage() }

do {
    let broker = try BrokerURL.resolve(arguments["--broker"], environment: ProcessInfo.processInfo.environment)
    let transport = try MQTTTransport(broker: broker)
    try await transport.connect()
    let subscription = try await transport.consume(inTopic)
    FileHandle.standardError.write(Data("relaying \(inTopic) -> \(outTopic) on \(broker)\n".utf8))
    for await delivery in subscription {
        try await transport.send(toOutport: outTopic, delivery.message)
        delivery.ack()
    }
} catch {
    FileHandle.standardError.write(Data("msgflo-bench-relay-mqtt: \(error)\n".utf8))
    exit(1)
}
