import HTTPTypes
import Hummingbird
import MsgFlo
import NIOCore

/// The live view's HTTP routes: the page, the drawing, the event stream, and the edge and node panels.
enum LiveRoutes {
    static func add(to router: Router<BasicRequestContext>, live: LiveView, options: RuntimeOptions) {
        let page = LivePage.html(options)
        router.get("/") { _, _ -> Response in
            respond(page, type: "text/html; charset=utf-8")
        }
        router.get("/live/graph.svg") { _, _ -> Response in
            respond(await live.svg().svg, type: "image/svg+xml; charset=utf-8")
        }
        router.get("/live/state") { _, _ -> Response in
            respond(await live.stateJSON().serialized, type: "application/json")
        }
        router.get("/live/edge") { request, _ -> Response in
            guard let src = request.uri.queryParameters.get("src"), let tgt = request.uri.queryParameters.get("tgt"),
                  let json = await live.edgeJSON(src: src, tgt: tgt) else {
                return respond("{\"error\":\"no such edge\"}", type: "application/json", status: .notFound)
            }
            return respond(json.serialized, type: "application/json")
        }
        router.get("/live/node") { request, _ -> Response in
            guard let role = request.uri.queryParameters.get("role"), let json = await live.nodeJSON(role: role) else {
                return respond("{\"error\":\"no such node\"}", type: "application/json", status: .notFound)
            }
            return respond(json.serialized, type: "application/json")
        }
        // Server-Sent Events: one `state` event a second while the client stays (and until graceful shutdown).
        router.get("/live/events") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
                while !Task.isCancelled && !live.isShuttingDown {
                    let state = await live.stateJSON().serialized
                    try await writer.write(ByteBuffer(string: "event: state\ndata: \(state)\n\n"))
                    try await Task.sleep(for: .seconds(1))
                }
                try await writer.finish(nil)
            })
        }
    }

    static func respond(_ text: String, type: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
