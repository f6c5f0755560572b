import Foundation
import Logging
import MsgFlo
import MsgFloCoordinator
import MsgFloObserve
import Synchronization

/// The live runtime's settings (`msgflo --port …`); defaults are msgflo's.
package struct RuntimeOptions: Sendable {
    package var host = "localhost"
    package var port = 3569
    /// With a secret, a client that does not present it is read-only.
    package var secret: String?
    package var runtimeID = UUID().uuidString.lowercased()
    package var ide = "http://app.flowhub.io"
    package var label = "MsgFlo for Swift coordinator"
    /// Protocol version reported (msgflo's).
    package var version = "0.7"
    /// `--auto-save`: the graph file every change is written back to.
    package var autoSavePath: String?
    package var autoSaveDelay: Duration = .milliseconds(500)
    /// `--componentdir`: where `component:source` writes and `component:getsource` reads component files.
    package var componentDirectory: String?
    /// `--library`: read again after `component:source` wrote a file.
    package var libraryPath: String?
    /// Data frames a slow client may have waiting before more are dropped for it.
    package var clientDataLimit = 10_000
    /// Largest frame taken from a client.
    package var maximumFrame = 16 << 20

    package init() {}

    /// The address msgflo prints: `ws://HOST:PORT`.
    package var address: String { "ws://\(host):\(port)" }

    /// msgflo's "Open in Flowhub" link: `<ide>#runtime/endpoint?<escaped protocol=websocket&address=…&id=…>`.
    package var liveURL: String {
        let query = "protocol=websocket&address=\(address)&id=\(runtimeID)"
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.!~*'()")
        return "\(ide)#runtime/endpoint?\(query.addingPercentEncoding(withAllowedCharacters: allowed) ?? query)"
    }
}

/// A protocol error: answered as `<protocol>:error` to the client that caused it.
struct ProtocolError: Error {
    var message: String
    init(_ m: String) { message = m }
}

/// Flowhub's FBP network protocol (fbp-protocol 0.7) over the coordinator: runtime, graph, network and component
/// messages in, replies and broadcasts out. Every graph edit goes through the coordinator's desired graph (the
/// reconciler carries it out); every change is broadcast to every client. Independent of the WebSocket server,
/// which hands it text frames (``handle(_:from:)``) and writes each client's ``RuntimeClient/outbox``.
package final class FBPRuntime: Sendable {
    package let coordinator: Coordinator
    package let options: RuntimeOptions
    let logger: Logger
    struct State {
        var clients: [Int: RuntimeClient] = [:]
        var nextID = 1
        /// Groups (the coordinator has no use for them; kept for clients and the saved file).
        var groups: [(name: String, nodes: [String], metadata: JSONValue?)] = []
        /// `graph:clear`'s properties of the current graph.
        var properties: JSONObject = [:]
    }
    let state = Mutex(State())
    let saver: AutoSaver?
    /// The live view at `GET /` (LiveView.swift) follows the same events.
    package let live: LiveView

    package init(coordinator: Coordinator, options: RuntimeOptions, logger: Logger, observability: Observability? = nil) {
        self.coordinator = coordinator
        self.options = options
        self.logger = logger
        self.live = LiveView(coordinator: coordinator, observability: observability)
        self.saver = options.autoSavePath.map { AutoSaver(path: $0, delay: options.autoSaveDelay, logger: logger) }
    }

    package static let allCapabilities = [
        "protocol:runtime", "protocol:graph", "protocol:component", "protocol:network",
        "network:persist", "network:status", "network:data", "network:control",
        "component:getsource", "component:setsource",
    ]
    package static let readOnlyCapabilities = [
        "protocol:component", "network:status", "network:data", "component:getsource", "graph:readonly",
    ]

    // MARK: - Clients

    package func connect() -> RuntimeClient {
        state.withLock { s in
            let c = RuntimeClient(id: s.nextID, dataLimit: options.clientDataLimit)
            s.nextID += 1
            s.clients[c.id] = c
            return c
        }
    }

    package func disconnect(_ client: RuntimeClient) {
        _ = state.withLock { $0.clients.removeValue(forKey: client.id) }
        client.finish()
    }

    var clients: [RuntimeClient] { state.withLock { Array($0.clients.values) } }

    /// Follows the coordinator's events (data, IIPs, process errors, graph changes) from now on.
    package func start() async {
        coordinator.events.observe { [weak self] e in self?.coordinatorEvent(e) }
        await coordinator.enableDataTaps()
    }

    package func stop() async {
        coordinator.events.observe(nil)
        for c in clients { disconnect(c) }
        await saver?.flush()
    }

    // MARK: - Frames

    static func frame(_ proto: String, _ command: String, _ payload: JSONValue, responseTo: String? = nil) -> String {
        var o: JSONObject = ["protocol": .string(proto), "command": .string(command), "payload": payload]
        if let responseTo { o["responseTo"] = .string(responseTo) }
        return JSONValue.object(o).serialized
    }

    /// One request being answered: who asked, and whether they may write.
    struct Request {
        var client: RuntimeClient
        var proto: String
        var command: String
        var payload: JSONObject
        var canWrite: Bool
        var requestID: String?

        func reply(_ command: String, _ payload: JSONValue, proto: String? = nil) {
            client.send(FBPRuntime.frame(proto ?? self.proto, command, payload, responseTo: requestID))
        }
    }

    /// To every client (the requester gets `responseTo`).
    func broadcast(_ proto: String, _ command: String, _ payload: JSONValue, to request: Request? = nil) {
        let plain = Self.frame(proto, command, payload)
        for c in clients {
            if let request, c == request.client, request.requestID != nil {
                c.send(Self.frame(proto, command, payload, responseTo: request.requestID))
            } else {
                c.send(plain)
            }
        }
    }

    /// Takes one text frame from a client. A frame that is not a protocol message gets an error reply and changes
    /// nothing else.
    package func handle(_ text: String, from client: RuntimeClient) async {
        let message: JSONValue
        do { message = try JSONValue(parsing: text) } catch {
            client.send(Self.frame("runtime", "error", ["message": .string("bad frame: not JSON (\(error.message))")]))
            return
        }
        guard let proto = message["protocol"]?.stringValue, let command = message["command"]?.stringValue else {
            client.send(Self.frame("runtime", "error", ["message": "bad frame: 'protocol' and 'command' must be strings"]))
            return
        }
        let known = ["runtime", "graph", "network", "component"]
        guard known.contains(proto) else {
            client.send(Self.frame("runtime", "error", ["message": .string("unknown protocol '\(Self.clip(proto))'")]))
            return
        }
        let payloadValue = message["payload"] ?? .object([:])
        guard let payload = payloadValue.objectValue else {
            client.send(Self.frame(proto, "error", ["message": "bad frame: 'payload' must be an object"]))
            return
        }
        let secret = message["secret"]?.stringValue ?? payload["secret"]?.stringValue
        let canWrite = options.secret == nil || secret == options.secret
        var request = Request(client: client, proto: proto, command: command, payload: payload, canWrite: canWrite,
                              requestID: message["requestId"]?.stringValue)
        request.payload.removeValue(forKey: "secret")
        do {
            switch proto {
            case "runtime": try await runtimeCommand(request)
            case "graph": try await graphCommand(request)
            case "network": try await networkCommand(request)
            default: try await componentCommand(request)
            }
        } catch {
            request.reply("error", ["message": .string(error.message)])
        }
    }

    static func clip(_ s: String, _ limit: Int = 200) -> String {
        s.utf8.count <= limit ? s : String(decoding: s.utf8.prefix(limit), as: UTF8.self) + "…"
    }

    func capabilities(canWrite: Bool) -> [String] { canWrite ? Self.allCapabilities : Self.readOnlyCapabilities }

    func requireWrite(_ r: Request) throws(ProtocolError) {
        guard r.canWrite else { throw ProtocolError("\(r.proto):\(r.command) refused: this client is read-only (no valid secret)") }
    }

    // MARK: - Payload helpers

    static func string(_ p: JSONObject, _ key: String, limit: Int = 256) throws(ProtocolError) -> String {
        guard let v = p[key] else { throw ProtocolError("missing '\(key)'") }
        guard let s = v.stringValue else { throw ProtocolError("'\(key)' must be a string") }
        guard !s.isEmpty else { throw ProtocolError("'\(key)' must not be empty") }
        guard s.utf8.count <= limit else { throw ProtocolError("'\(key)' is longer than \(limit) bytes") }
        guard !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw ProtocolError("'\(key)' contains control characters")
        }
        return s
    }

    /// A node name: it becomes part of queue names (`role.PORT`), so no MQTT wildcards either.
    static func nodeName(_ p: JSONObject, _ key: String) throws(ProtocolError) -> String {
        let s = try string(p, key, limit: 200)
        guard !s.contains("#"), !s.contains("+") else { throw ProtocolError("'\(key)' must not contain '#' or '+'") }
        return s
    }

    static func portRef(_ p: JSONObject, _ key: String) throws(ProtocolError) -> DesiredGraph.Endpoint {
        guard let o = p[key]?.objectValue else { throw ProtocolError("'\(key)' must be an object with 'node' and 'port'") }
        return DesiredGraph.Endpoint(try nodeName(o, "node"), try string(o, "port", limit: 200))
    }

    static func portJSON(_ e: DesiredGraph.Endpoint) -> JSONValue { ["node": .string(e.role), "port": .string(e.port)] }

    /// Metadata: an object, or absent.
    static func metadata(_ p: JSONObject) throws(ProtocolError) -> JSONObject? {
        guard let v = p["metadata"], v != .null else { return nil }
        guard let o = v.objectValue else { throw ProtocolError("'metadata' must be an object") }
        return o
    }

    /// Merges `change` into `old`: a null value removes its key.
    static func merge(_ old: JSONValue?, _ change: JSONObject) -> JSONValue {
        var o = old?.objectValue ?? [:]
        for (k, v) in change {
            // JSONValue is nil-literal expressible: remove the key explicitly rather than assign `nil`.
            if v == .null { o.removeValue(forKey: k) } else { o[k] = v }
        }
        return .object(o)
    }

    // MARK: - runtime

    func runtimeCommand(_ r: Request) async throws(ProtocolError) {
        switch r.command {
        case "getruntime":
            let graph = await coordinator.currentGraph
            var p: JSONObject = [
                "id": .string(options.runtimeID), "label": .string(options.label), "version": .string(options.version),
                "type": "msgflo", "graph": .string(graph.name),
                "capabilities": .array(capabilities(canWrite: r.canWrite).map(JSONValue.string)),
                "allCapabilities": .array(Self.allCapabilities.map(JSONValue.string)),
            ]
            if let config = await coordinator.library?.config {
                if let ns = config.namespace { p["namespace"] = .string(ns) }
                if let repo = config.repository { p["repository"] = .string(repo) }
            }
            r.reply("runtime", .object(p))
            r.reply("ports", portsPayload(graph))
        case "packet":
            try requireWrite(r)
            let port = try Self.string(r.payload, "port")
            let event = try Self.string(r.payload, "event")
            let graph = try Self.string(r.payload, "graph")
            guard graph == (await coordinator.currentGraph.name) else { throw ProtocolError("Requested graph not found") }
            if event == "data" {
                let data = r.payload["payload"] ?? .null
                do { try await coordinator.sendToExported(port, Message(json: data)) } catch {
                    throw ProtocolError(error.message)
                }
            }
            var p: JSONObject = ["port": .string(port), "event": .string(event), "graph": .string(graph)]
            if let d = r.payload["payload"] { p["payload"] = d }
            r.reply("packetsent", .object(p))
        default:
            throw ProtocolError("unknown command runtime:\(Self.clip(r.command))")
        }
    }

    func portsPayload(_ graph: DesiredGraph) -> JSONValue {
        func ports(_ list: [DesiredGraph.Exported]) -> JSONValue {
            .array(list.map { ["id": .string($0.name), "type": "any", "addressable": false, "required": false] })
        }
        return ["graph": .string(graph.name), "inPorts": ports(graph.inports), "outPorts": ports(graph.outports)]
    }

    // MARK: - Coordinator events

    static func edgeKey(_ src: DesiredGraph.Endpoint, _ tgt: DesiredGraph.Endpoint) -> String {
        "\(src.role)\u{0}\(src.port.lowercased())\u{0}\(tgt.role)\u{0}\(tgt.port.lowercased())"
    }

    static func dataJSON(_ m: Message) -> JSONValue { m.data ?? .string("<\(m.count) bytes>") }

    func coordinatorEvent(_ e: CoordinatorEvent) {
        live.observe(e)
        switch e {
        case .iip(let iip):
            let graph = currentGraphName
            let frame = Self.frame("network", "data", [
                "id": .string("DATA -> \(iip.tgt.port.uppercased()) \(iip.tgt.role)()"), "graph": .string(graph),
                "tgt": Self.portJSON(iip.tgt), "data": iip.data,
            ])
            for c in clients { c.send(frame, droppable: true) }
        case .data(let edge, let message):
            let key = Self.edgeKey(edge.src, edge.tgt)
            let targets = clients.filter { c in c.watched.withLock { $0?.contains(key) ?? true } }
            guard !targets.isEmpty else { return }
            let frame = Self.frame("network", "data", [
                "id": .string("\(edge.src.role)() \(edge.src.port.uppercased()) -> \(edge.tgt.port.uppercased()) \(edge.tgt.role)()"),
                "graph": .string(currentGraphName), "src": Self.portJSON(edge.src), "tgt": Self.portJSON(edge.tgt),
                "data": Self.dataJSON(message),
            ])
            for c in targets { c.send(frame, droppable: true) }
        case .packet(let port, let message):
            let frame = Self.frame("runtime", "packet", [
                "port": .string(port), "event": "data", "graph": .string(currentGraphName), "payload": Self.dataJSON(message),
            ])
            for c in clients { c.send(frame, droppable: true) }
        case .processError(let role, let text):
            let frame = Self.frame("network", "processerror", [
                "id": .string(role), "error": .string(Self.clip(text, 4096)), "graph": .string(currentGraphName),
            ])
            for c in clients { c.send(frame, droppable: true) }
        case .output(let role, let line):
            let frame = Self.frame("network", "output", ["message": .string(Self.clip("\(role): \(line)", 4096)), "type": "message"])
            for c in clients { c.send(frame, droppable: true) }
        case .graphChanged:
            if let saver {
                let groups = state.withLock { $0.groups }
                let coordinator = self.coordinator
                saver.schedule { await AutoSaver.Snapshot(graph: coordinator.currentGraph, groups: groups) }
            }
        }
    }

    /// The graph's name as events report it (kept in step by the graph commands).
    var currentGraphName: String { graphName.withLock { $0 } }
    let graphName = Mutex("main")

    /// Learns the loaded graph's name (call once before clients connect).
    package func prepare() async {
        let name = await coordinator.currentGraph.name
        graphName.withLock { $0 = name }
    }
}
