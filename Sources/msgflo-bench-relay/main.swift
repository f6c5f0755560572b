// A relay for throughput benchmarks: consumes IN (declared as an inport) and sends every message, unchanged, to OUT
// (declared as an outport), acknowledging each one after its send. Same job as ../shared/bench's C relays.
//
//   msgflo-bench-relay --broker URL --in QUEUE --out QUEUE [--prefetch N]
//
// Prints "relay ready" once it consumes. Runs until killed.
import ArgumentParser
import Foundation
import MsgFlo
import MsgFloCLI
import MsgFloTransports

struct BenchRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "msgflo-bench-relay",
        abstract: "Consumes --in and sends every message, unchanged, to --out (a throughput benchmark's relay).")

    @OptionGroup var broker: BrokerArgument
    @Option(name: .customLong("in"), help: "The queue consumed (declared as an inport).")
    var inQueue: String
    @Option(name: .customLong("out"), help: "The queue sent to (declared as an outport).")
    var outQueue: String
    @Option(help: "Messages in hand at once.")
    var prefetch = 100

    func validate() throws {
        guard prefetch > 0 else { throw ValidationError("--prefetch must be a positive number") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let logger = CommandLogging.logger("msgflo-bench-relay", level: CommandLogging.level(environment, default: .info))
        try await relay(Transports.make(broker.url(environment: environment), logger: logger))
    }

    /// The relay loop. Not in top-level code: that runs on the main actor, and every send would hop off it and back.
    func relay(_ transport: any Transport) async throws {
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
}

await CommandMain.run(BenchRelay.self)
