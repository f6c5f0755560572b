import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import MsgFlo
import MsgFloCoordinator
import NIOCore
import ServiceLifecycle

/// The live runtime's HTTP and WebSocket server (Hummingbird), a `Service` for the daemon's ServiceGroup: WebSocket
/// upgrades on any path speak the FBP protocol (sub-protocol `noflo` when the client asks for it); `GET /` answers a
/// small page with the "Open in Flowhub" link.
public struct RuntimeServer: Service {
    public let runtime: FBPRuntime
    let logger: Logger
    /// Called with the port once the server listens (the printed start lines; tests learn an ephemeral port).
    let onListening: @Sendable (Int) async -> Void
    /// The interface to listen on (msgflo listens on all of them; `--host` is the name it prints).
    let bindAddress: String

    public init(runtime: FBPRuntime, bindAddress: String = "0.0.0.0", logger: Logger,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.runtime = runtime
        self.bindAddress = bindAddress
        self.logger = logger
        self.onListening = onListening
    }

    /// msgflo's two start lines.
    public static func startLines(_ options: RuntimeOptions) -> [String] {
        ["msgflo started on \(options.address)", "Open in Flowhub: \(options.liveURL)"]
    }

    public func run() async throws {
        let runtime = self.runtime
        let options = runtime.options
        let logger = self.logger
        await runtime.prepare()
        await runtime.start()

        let router = Router()
        router.get("/") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: Self.frontPage(options))))
        }
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
            try await app.run()
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

    /// msgflo's front page: the "Open in Flowhub" link, its address taken from the page's own location.
    static func frontPage(_ options: RuntimeOptions) -> String {
        let ide = escapeHTML(options.ide)
        let idJS = options.runtimeID.replacingOccurrences(of: "\\", with: "").replacingOccurrences(of: "\"", with: "")
        return """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>msgflo</title></head>
        <body>
        <h1>msgflo</h1>
        <p>Runtime <code>\(escapeHTML(options.runtimeID))</code>, FBP protocol \(escapeHTML(options.version)) over WebSocket on this port.</p>
        <p><a id="flowhub_url" href="\(escapeHTML(options.liveURL))">Open in Flowhub</a></p>
        <script>
          var addr = window.location.origin.replace("https://", "wss://").replace("http://", "ws://");
          var ide = "\(ide.replacingOccurrences(of: "\"", with: ""))";
          var url = ide + "#runtime/endpoint?" + encodeURIComponent("protocol=websocket&address=" + addr + "&id=\(idJS)");
          document.getElementById("flowhub_url").href = url;
        </script>
        </body></html>

        """
    }
}
