import ArgumentParser
import Foundation
import Logging
import MsgFloCoordinator
import MsgFloObserve
import MsgFloRuntime
import ServiceLifecycle

/// The live runtime's options (msgflo's): the FBP protocol over WebSocket for Flowhub. The server runs when any of
/// `--port`, `--host`, `--secret`, `--runtime-id`, `--ide` or `--auto-save` is given (port 3569 by default, as
/// msgflo's); without them the daemon runs as before, with no HTTP at all.
struct RuntimeArguments: ParsableArguments {
    @Option(help: "Port of the FBP runtime (Flowhub's WebSocket protocol), the live view (GET /) and /metrics, /healthz, /readyz. Default: 3569 when any runtime option is given.")
    var port: Int?
    @Option(help: "Host name the runtime's address is printed with (it listens on every interface, as msgflo). Default: localhost.")
    var host: String?
    @Option(help: "Secret a Flowhub client must present to change anything; without it a client is read-only. Default: none (everyone may edit, as in msgflo).")
    var secret: String?
    @Option(help: "Runtime id reported to clients. Default: $MSGFLO_RUNTIME_ID, else a new UUID.")
    var runtimeId: String?
    @Option(help: "Flowhub address for the 'Open in Flowhub' link. Default: http://app.flowhub.io.")
    var ide: String?
    @Flag(help: "Write every change made over the runtime back to the --graph file (debounced, atomic, in the file's own format).")
    var autoSave = false
    @Option(help: "Accepted for msgflo compatibility; nodes never block the runtime (they are pending until their participant appears).")
    var waitTimeout: Double?
    @Option(help: "Accepted for msgflo compatibility; not used.")
    var pingUrl: String?
    @Option(help: "Accepted for msgflo compatibility; not used.")
    var pingMethod: String?
    @Option(help: "Accepted for msgflo compatibility; not used (0 = never).")
    var pingInterval: Double?

    var wanted: Bool { port != nil || host != nil || secret != nil || runtimeId != nil || ide != nil || autoSave }

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0...65535") }
        if let secret, secret.isEmpty { throw ValidationError("--secret must not be empty") }
        for (name, v) in [("--host", host), ("--runtime-id", runtimeId), ("--ide", ide)] {
            if let v, v.isEmpty || v.utf8.count > 1024 || v.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                throw ValidationError("\(name) must be 1 to 1024 printable bytes")
            }
        }
    }

    /// Runs the coordinator, with the runtime server beside it in one ServiceGroup when asked for.
    func run(_ service: CoordinatorService, config: DaemonConfiguration, logger: Logger,
             observability: Observability? = nil) async throws {
        guard wanted else {
            try await service.runUntilSignalled()
            return
        }
        if autoSave && config.graphPath == nil { throw Failure("--auto-save needs --graph") }
        var options = RuntimeOptions()
        options.port = port ?? 3569
        if let host { options.host = host }
        options.secret = secret
        let env = ProcessInfo.processInfo.environment["MSGFLO_RUNTIME_ID"].flatMap { $0.isEmpty ? nil : $0 }
        if let id = runtimeId ?? env { options.runtimeID = id }
        if let ide { options.ide = ide }
        options.autoSavePath = autoSave ? config.graphPath : nil
        options.componentDirectory = config.componentDirectory
        options.libraryPath = config.libraryGiven || FileManager.default.fileExists(atPath: config.libraryPath) ? config.libraryPath : nil
        let runtime = FBPRuntime(coordinator: service.coordinator, options: options, logger: logger, observability: observability)
        let configured = options
        let server = RuntimeServer(runtime: runtime, logger: logger, observability: observability) { port in
            var shown = configured
            shown.port = port
            for line in RuntimeServer.startLines(shown) { print(line) }
            fflush(nil)
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service), .init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
