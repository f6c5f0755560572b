import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import MsgFlo
import MsgFloCoordinator
import MsgFloObserve
import NIOCore
import ServiceLifecycle

/// The live runtime's HTTP and WebSocket server (Hummingbird), a `Service` for the daemon's ServiceGroup: WebSocket
/// upgrades on any path speak the FBP protocol (sub-protocol `noflo` when the client asks for it); `GET /` is the live
/// view (LivePage, with the "Open in Flowhub" link), `/metrics`, `/healthz` and `/readyz` are for monitoring
/// (docs/observe.md).
package struct RuntimeServer: Service {
    package let runtime: FBPRuntime
    let logger: Logger
    /// Called with the port once the server listens (the printed start lines; tests learn an ephemeral port).
    let onListening: @Sendable (Int) async -> Void
    /// The interface to listen on (msgflo listens on all of them; `--host` is the name it prints).
    let bindAddress: String
    /// The daemon's metrics, served at `/metrics` (nil: an empty exposition).
    let observability: Observability

    package init(runtime: FBPRuntime, bindAddress: String = "0.0.0.0", logger: Logger,
                observability: Observability? = nil,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.runtime = runtime
        self.observability = observability ?? runtime.live.observability ?? Observability()
        self.bindAddress = bindAddress
        self.logger = logger
        self.onListening = onListening
    }

    /// msgflo's two start lines.
    package static func startLines(_ options: RuntimeOptions) -> [String] {
        ["msgflo started on \(options.address)", "Open in Flowhub: \(options.liveURL)"]
    }

    package func run() async throws {
        let runtime = self.runtime
        let options = runtime.options
        let logger = self.logger
        await runtime.prepare()
        await runtime.start()

        let router = Router()
        let live = runtime.live
        LiveRoutes.add(to: router, live: live, options: options)
        let coordinator = runtime.coordinator
        ObserveRoutes.add(to: router, observability: observability, readiness: {
            let connected = await coordinator.brokerView.connected
            // The graph's edges, not the plan's: before the first reconcile pass the plan has none, and an empty
            // plan is no wired graph (a 1,000-node daemon said "ready ... (0 edges)" for its first seconds).
            let edges = await coordinator.currentGraph.edges
            let plan = await coordinator.currentPlan.edges
            let pending = edges.filter { plan[$0] != .wired }.count
            let wiring = pending == 0 ? "graph wired (\(edges.count) edges)" : "\(pending) of \(edges.count) edges pending"
            return Readiness(ready: connected && pending == 0,
                             detail: "\(connected ? "broker connected" : "broker not connected"); \(wiring)")
        })
        let maxFrame = options.maximumFrame
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(configuration: .init(maxFrameSize: maxFrame)) { request, _, _ in
                let requested = request.headerFields[values: .secWebSocketProtocol]
                    .flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                var headers = HTTPFields()
                if requested.contains("noflo") { headers[.secWebSocketProtocol] = "noflo" }
                return .upgrade(headers) { inbound, outbound, _ in
                    try await Self.serve(runtime, inbound, outbound, maxFrame: maxFrame, logger: logger)
                }
            },
            configuration: .init(address: .hostname(bindAddress, port: options.port), serverName: "msgflo"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? options.port) },
            logger: logger
        )
        defer { logger.debug("runtime server stopped") }
        do {
            // The live view's sampler beside the server; at graceful shutdown the page's event streams end (they
            // would hold the server's shutdown otherwise).
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await live.sampleLoop() }
                    try await app.run()
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                live.shutDown()
            }
        } catch {
            await runtime.stop()
            throw error
        }
        await runtime.stop()
    }

    /// One WebSocket connection: frames in go to the protocol in order; the client's outbox goes out.
    static func serve(_ runtime: FBPRuntime, _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter,
                      maxFrame: Int, logger: Logger) async throws {
        let client = runtime.connect()
        defer { runtime.disconnect(client) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await text in client.outbox {
                    try await outbound.write(.text(text))
                    client.written()
                }
            }
            for try await message in inbound.messages(maxSize: maxFrame) {
                switch message {
                case .text(let text): await runtime.handle(text, from: client)
                case .binary: client.send(FBPRuntime.frame("runtime", "error", ["message": "bad frame: binary frames are not protocol messages"]))
                }
            }
            runtime.disconnect(client)
            group.cancelAll()
        }
    }

    static func escapeHTML(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
