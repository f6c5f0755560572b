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
        // Server-Sent Events, once a second while the client stays (and until graceful shutdown): the whole `state`
        // first (and again when the graph's version changes), then a `delta` with only what changed since the last
        // event (84 KB a second per viewer for 1,000 nodes otherwise).
        router.get("/live/events") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
                var last: JSONValue?
                while !Task.isCancelled && !live.isShuttingDown {
                    let state = await live.stateJSON()
                    if let last, let delta = LiveView.delta(from: last, to: state) {
                        try await writer.write(ByteBuffer(string: "event: delta\ndata: \(delta.serialized)\n\n"))
                    } else {
                        try await writer.write(ByteBuffer(string: "event: state\ndata: \(state.serialized)\n\n"))
                    }
                    last = state
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
