import Foundation
import MsgFlo
import MsgFloCoordinator

extension FBPRuntime {
    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }

    /// `running`: started, and messages wait in the graph's queues (AMQP); MQTT cannot tell, so there it is only
    /// `started`'s echo at the moment of starting and false otherwise.
    func running(started: Bool) async -> Bool {
        guard started else { return false }
        return await coordinator.messagesWaiting() ?? false
    }

    func networkCommand(_ r: Request) async throws(ProtocolError) {
        let id = try Self.graphID(r)
        guard id == (await coordinator.currentGraph.name) else { throw ProtocolError("Requested graph not found") }
        switch r.command {
        case "start":
            try requireWrite(r)
            await coordinator.setNetworkStarted(true)
            broadcast("network", "started", ["time": .string(Self.timestamp()), "graph": .string(id), "started": true,
                                              "running": true], to: r)
        case "stop":
            try requireWrite(r)
            let uptime = await coordinator.networkUptime
            await coordinator.setNetworkStarted(false)
            broadcast("network", "stopped", ["time": .string(Self.timestamp()), "uptime": .double(uptime), "graph": .string(id),
                                              "started": false, "running": false], to: r)
        case "getstatus", "debug":
            let started = await coordinator.isNetworkStarted
            let running = await running(started: started)
            r.reply("status", ["graph": .string(id), "started": .bool(started), "running": .bool(running)])
        case "edges":
            guard let list = r.payload["edges"]?.arrayValue, list.count <= 100_000 else {
                throw ProtocolError("'edges' must be an array")
            }
            var keys: Set<String> = []
            var echo: [JSONValue] = []
            for item in list {
                guard let o = item.objectValue else { throw ProtocolError("'edges' must hold objects with 'src' and 'tgt'") }
                let src = try Self.portRef(o, "src"), tgt = try Self.portRef(o, "tgt")
                keys.insert(Self.edgeKey(src, tgt))
                echo.append(["src": Self.portJSON(src), "tgt": Self.portJSON(tgt)])
            }
            r.client.watched.withLock { $0 = keys }
            r.reply("edges", ["graph": .string(id), "edges": .array(echo)])
        case "persist":
            try requireWrite(r)
            guard let saver else { throw ProtocolError("network:persist needs --auto-save with --graph") }
            let groups = state.withLock { $0.groups }
            do { try AutoSaver.write(AutoSaver.Snapshot(graph: await coordinator.currentGraph, groups: groups), to: saver.path) } catch {
                throw ProtocolError("cannot save \(saver.path): \(error)")
            }
            r.reply("persist", ["graph": .string(id)])
        default:
            throw ProtocolError("unknown command network:\(Self.clip(r.command))")
        }
    }

    // MARK: - component

    static func portDefinitions(_ ports: [PortDefinition]) -> JSONValue {
        .array(ports.filter { !$0.hidden }.map { p in
            var o: JSONObject = ["id": .string(p.id), "type": .string(p.type.isEmpty ? "any" : p.type),
                                          "addressable": false, "required": false]
            if let d = p.description { o["description"] = .string(d) }
            return .object(o)
        })
    }

    func componentCommand(_ r: Request) async throws(ProtocolError) {
        switch r.command {
        case "list":
            let components = await componentList()
            for c in components { r.reply("component", c) }
            r.reply("componentsready", .int(components.count))
        case "getsource":
            let name = try Self.string(r.payload, "name", limit: 300)
            let graph = await coordinator.currentGraph
            let base = name.split(separator: "/").last.map(String.init) ?? name
            if name == graph.name || base == graph.name {
                let groups = state.withLock { $0.groups }
                let code = AutoSaver.fbpGraph(AutoSaver.Snapshot(graph: graph, groups: groups)).jsonText()
                r.reply("source", ["name": .string(graph.name), "language": "json", "code": .string(code)])
                return
            }
            guard let c = await coordinator.library?.component(named: name), let file = c.file else {
                throw ProtocolError("Component \(name) not found")
            }
            let path = file  // the library's path of the file (the component directory joined with its name)
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: path), let size = attrs[.size] as? Int,
                  size <= 4 << 20, let data = FileManager.default.contents(atPath: path) else {
                throw ProtocolError("cannot read the source of \(name) (\(file))")
            }
            r.reply("source", ["name": .string(c.name), "language": .string(c.language ?? "unknown"),
                               "code": .string(String(decoding: data, as: UTF8.self))])
        case "source":
            try requireWrite(r)
            try await setSource(r)
        default:
            throw ProtocolError("unknown command component:\(Self.clip(r.command))")
        }
    }

    /// The library's components and those participants announced, with their ports where a participant showed them.
    func componentList() async -> [JSONValue] {
        let library = await coordinator.library
        let graph = await coordinator.currentGraph
        let definitions = await coordinator.definitions()
        var byComponent: [String: ParticipantDefinition] = [:]
        for d in definitions {
            byComponent[d.component] = byComponent[d.component] ?? d
            if let c = graph.nodes[d.role]?.component { byComponent[c] = byComponent[c] ?? d }
        }
        var out: [JSONValue] = []
        var seen: Set<String> = []
        func add(_ name: String, description: String, _ d: ParticipantDefinition?) {
            guard seen.insert(name).inserted else { return }
            out.append(["name": .string(name), "description": .string(d?.label.isEmpty == false ? d!.label : description),
                        "icon": .string(d?.icon ?? ""), "subgraph": false,
                        "inPorts": Self.portDefinitions(d?.inports ?? []), "outPorts": Self.portDefinitions(d?.outports ?? [])])
        }
        if let library {
            // The configured names too: the library folds `core/Repeat` into `Repeat` (msgflo's lookup), clients
            // want both listed.
            for name in library.names + library.config.components.map(\.name) {
                let base = name.split(separator: "/").last.map(String.init) ?? name
                add(name, description: library.component(named: name)?.command ?? "", byComponent[name] ?? byComponent[base])
            }
        }
        for d in definitions { add(d.component, description: d.label, d) }
        return out
    }

    static let sourceExtensions: [String: String] = [
        "python": "py", "javascript": "js", "coffeescript": "coffee", "yaml": "yml", "json": "json", "c++": "cpp",
        "shell": "sh",
    ]

    /// `component:source`: writes the file under --componentdir and reads the library again, so the component can
    /// then be used in the graph.
    func setSource(_ r: Request) async throws(ProtocolError) {
        let name = try Self.string(r.payload, "name", limit: 100)
        let language = try Self.string(r.payload, "language", limit: 50)
        guard let code = r.payload["code"]?.stringValue else { throw ProtocolError("'code' must be a string") }
        guard code.utf8.count <= 4 << 20 else { throw ProtocolError("'code' is larger than 4 MB") }
        let base = name.split(separator: "/").last.map(String.init) ?? name
        guard base.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw ProtocolError("component name '\(Self.clip(name))' must be letters, digits, '_' or '-'")
        }
        guard let ext = Self.sourceExtensions[language.lowercased()] else {
            throw ProtocolError("unsupported language '\(language)' (\(Self.sourceExtensions.keys.sorted().joined(separator: ", ")))")
        }
        guard let dir = options.componentDirectory else { throw ProtocolError("no --componentdir to write components into") }
        let path = "\(dir)/\(base).\(ext)"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try AutoSaver.atomicWrite(Array(code.utf8), to: path)
        } catch {
            throw ProtocolError("cannot write \(path): \(error)")
        }
        if let libraryPath = options.libraryPath {
            do {
                let lib = try ComponentLibrary.load(path: libraryPath, componentDirectory: dir)
                await coordinator.setLibrary(lib)
            } catch {
                throw ProtocolError("wrote \(path), but the library did not load: \(error.message)")
            }
        }
        r.reply("component", ["name": .string(base), "description": .string(path), "icon": "", "subgraph": false,
                              "inPorts": .array([]), "outPorts": .array([])])
    }
}
