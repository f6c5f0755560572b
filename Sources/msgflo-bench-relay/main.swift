// A relay for throughput benchmarks: consumes IN (declared as an inport) and sends every message, unchanged, to OUT
// (declared as an outport), acknowledging each one after its send. Same job as ../shared/bench's C relays.
//
//   msgflo-bench-relay --broker URL --in QUEUE --out QUEUE [--prefetch N]
//
// Prints "relay ready" once it consumes. Runs until killed.
import Foundation
import MsgFlo
import Logging
import MsgFloTransports

func usage(_ why: String) -> Never {
    FileHandle.standardError.write(Data("msgflo-bench-relay: \(why)\nusage: msgflo-bench-relay --broker URL --in QUEUE --out QUEUE [--prefetch N]\n".utf8))
    exit(2)
}

var options: [String: String] = [:]
var args = CommandLine.arguments.dropFirst()
while let flag = args.popFirst() {
    guard ["--broker", "--in", "--out", "--prefetch"].contains(flag) else { usage("unknown argument \(flag)") }
    guard let value = args.popFirst() else { usage("\(flag) needs a value") }
    options[flag] = value
}
guard let brokerText = options["--broker"], let inQueue = options["--in"], let outQueue = options["--out"] else {
    usage("--broker, --in and --out are required")
}
guard let prefetch = Int(options["--prefetch"] ?? "100"), prefetch > 0 else { usage("--prefetch must be a positive number") }

/// The relay loop. Not in top-level code: that runs on the main actor, and every send would hop off it and back.
func relay(broker: String, inQueue: String, outQueue: String, prefetch: Int) async throws {
    let transport = try Transports.make(try BrokerURL(parsing: broker), logger: Logger(label: "msgflo-bench-relay"))
    try await transport.connect()
    try await transport.declareInport(inQueue)
    try await transport.declareOutport(outQueue)
    let subscription = try await transport.consume(inQueue, options: ConsumeOptions(prefetch: prefetch))
    FileHandle.standardOutput.write(Data("relay ready\n".utf8))
    // On the transport's I/O thread where it has one, as the SDK's consumers run.
    try await withTaskExecutorPreference(transport.preferredExecutor) {
        for await delivery in subscription {
            try await transport.send(toOutport: outQueue, delivery.message)
            delivery.ack()
        }
    }
    await transport.close()
}

do {
    try await relay(broker: brokerText, inQueue: inQueue, outQueue: outQueue, prefetch: prefetch)
} catch {
    FileHandle.standardError.write(Data("msgflo-bench-relay: \(error)\n".utf8))
    exit(1)
}
