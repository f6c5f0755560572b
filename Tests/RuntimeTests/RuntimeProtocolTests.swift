import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MsgFlo
import TestSupport
import Testing

/// Every suite that runs a daemon, one at a time: they share the AMQP virtual host test-RuntimeTests, where `fbp`
/// is a work queue, so two daemons side by side would take each other's announcements (seen: AMQP-only losses when
/// the observe and browser suites ran beside this one).
@Suite(.serialized) struct RuntimeDaemons {}

/// The live runtime (`msgflo --port`) over WebSocket against real brokers: every protocol command and its errors.
extension RuntimeDaemons {
@Suite(.serialized) struct RuntimeProtocolTests {
    /// A daemon with participants/library.json (core/Repeat, core/Drop, core/Output …) and a running client.
    func withRuntime(_ kind: TestBrokers.Kind, _ extra: [String] = [], library: String = "", setup: (TempDir) throws -> Void = { _ in },
                     _ body: (Daemon, Int, TempDir) async throws -> Void) async throws {
        let broker = try TestBrokers.url(kind)
        let dir = try TempDir()
        defer { dir.remove() }
        try setup(dir)
        let lib = try dir.library(extra: library)
        let daemon = try await Daemon(["--library", lib, "--componentdir", dir.path("components")] + extra, broker: broker, in: dir)
        do {
            let port = try await daemon.port()
            try await body(daemon, port, dir)
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    static func port(_ node: String, _ port: String) -> JSONValue { ["node": .string(node), "port": .string(port)] }

    @Test(arguments: TestBrokers.Kind.allCases)
    func graphCommandsAreAnsweredAndBroadcastToEveryClient(_ kind: TestBrokers.Kind) async throws {
        try await withRuntime(kind) { daemon, port, _ in
            let a = WSClient(port: port), b = WSClient(port: port)
            let rt = try #require(await a.ask("runtime", "getruntime", reply: "runtime"))
            #expect(rt.payload["type"] == "msgflo")
            #expect(rt.payload["version"] == "0.7")
            let caps = rt.payload["capabilities"]?.arrayValue ?? []
            for c in ["protocol:graph", "protocol:network", "protocol:component", "protocol:runtime", "network:data",
                      "network:control", "network:status", "network:persist", "component:getsource", "component:setsource"] {
                #expect(caps.contains(.string(c)), "\(c)")
            }
            #expect(await a.next("runtime", "ports") != nil)
            _ = await b.ask("runtime", "getruntime", reply: "runtime")

            let g = "g\(UInt32.random(in: 0...UInt32.max))"
            let r = "r\(UInt32.random(in: 0...UInt32.max))", d = "d\(UInt32.random(in: 0...UInt32.max))"
            let clear = try #require(await a.ask("graph", "clear", ["id": .string(g), "name": "G", "main": true, "baseDir": "/x"]))
            #expect(clear.payload == ["id": .string(g), "name": "G", "main": true])
            #expect(await b.next("graph", "clear") == ["id": .string(g), "name": "G", "main": true])

            // addnode: answered at once, broadcast; the library's participant is started.
            let add = try #require(await a.ask("graph", "addnode", ["id": .string(r), "component": "core/Repeat", "metadata": ["x": 5], "graph": .string(g)]))
            #expect(add.command == "addnode")
            #expect(add.payload == ["id": .string(r), "component": "core/Repeat", "metadata": ["x": 5], "graph": .string(g)])
            #expect(await b.next("graph", "addnode")?["id"] == .string(r))
            _ = try #require(await a.ask("graph", "addnode", ["id": .string(d), "component": "core/Drop", "graph": .string(g)]))
            #expect(await a.ask("graph", "addnode", ["id": .string(d), "component": "core/Drop", "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "addnode", ["id": "x", "component": "core/Drop"])?.payload == ["message": "No graph specified"])
            #expect(await a.ask("graph", "addnode", ["id": "x", "component": "core/Drop", "graph": "nope"])?.payload == ["message": "Requested graph not found"])
            #expect(await a.ask("graph", "addnode", ["id": "", "component": "core/Drop", "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "addnode", ["id": "a#b", "component": "core/Drop", "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "addnode", ["id": "y", "graph": .string(g)])?.command == "error")

            // addedge: wired by the reconciler once both participants are there.
            let edge: JSONValue = ["src": Self.port(r, "out"), "tgt": Self.port(d, "in"), "metadata": ["route": 5], "graph": .string(g)]
            #expect(await a.ask("graph", "addedge", edge)?.payload == edge)
            #expect(await b.next("graph", "addedge") == edge)
            #expect(await a.ask("graph", "addedge", ["src": Self.port("ghost", "out"), "tgt": Self.port(d, "in"), "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "addedge", ["src": "bad", "tgt": Self.port(d, "in"), "graph": .string(g)])?.command == "error")
            try await eventually("edge bound in the log", timeout: .seconds(30)) { daemon.log.contains("edge bound: \(r) OUT -> IN \(d)") }

            // changenode merges, a null removes; changeedge likewise.
            #expect(await a.ask("graph", "changenode", ["id": .string(d), "metadata": ["sort": 1], "graph": .string(g)])?.payload["metadata"] == ["sort": 1])
            #expect(await a.ask("graph", "changenode", ["id": .string(d), "metadata": ["tag": "t"], "graph": .string(g)])?.payload["metadata"] == ["sort": 1, "tag": "t"])
            #expect(await a.ask("graph", "changenode", ["id": .string(d), "metadata": ["sort": .null, "tag": .null], "graph": .string(g)])?.payload["metadata"] == .object([:]))
            #expect(await a.ask("graph", "changenode", ["id": "ghost", "metadata": [:], "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "changenode", ["id": .string(d), "metadata": 3, "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "changeedge", ["src": Self.port(r, "out"), "tgt": Self.port(d, "in"), "metadata": ["route": 2], "graph": .string(g)])?.payload["metadata"] == ["route": 2])
            #expect(await a.ask("graph", "changeedge", ["src": Self.port(d, "out"), "tgt": Self.port(r, "in"), "metadata": [:], "graph": .string(g)])?.command == "error")

            // IIPs.
            let iip: JSONValue = ["src": ["data": "hi"], "tgt": Self.port(r, "in"), "metadata": [:], "graph": .string(g)]
            #expect(await a.ask("graph", "addinitial", iip)?.payload == iip)
            #expect(await a.ask("graph", "addinitial", ["src": [:], "tgt": Self.port(r, "in"), "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "removeinitial", ["tgt": Self.port(r, "in"), "graph": .string(g)])?.payload
                    == ["src": ["data": "hi"], "tgt": Self.port(r, "in"), "graph": .string(g)])
            #expect(await a.ask("graph", "removeinitial", ["tgt": Self.port(r, "in"), "graph": .string(g)])?.command == "error")

            // Exported ports, with runtime:ports after each change.
            #expect(await a.ask("graph", "addinport", ["public": "input", "node": .string(r), "port": "in", "graph": .string(g)])?.command == "addinport")
            #expect(await a.next("runtime", "ports")?["inPorts"]?.arrayValue?.first?["id"] == "input")
            #expect(await a.ask("graph", "addoutport", ["public": "output", "node": .string(d), "port": "out", "graph": .string(g)])?.command == "addoutport")
            #expect(await a.ask("graph", "addinport", ["public": "p", "node": "ghost", "port": "in", "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "renameinport", ["from": "input", "to": "IN2", "graph": .string(g)])?.payload == ["from": "input", "to": "IN2", "graph": .string(g)])
            #expect(await a.ask("graph", "renameoutport", ["from": "output", "to": "OUT2", "graph": .string(g)])?.command == "renameoutport")
            #expect(await a.ask("graph", "renameinport", ["from": "ghost", "to": "x", "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "removeoutport", ["public": "OUT2", "graph": .string(g)])?.payload == ["public": "OUT2", "graph": .string(g)])
            #expect(await a.ask("graph", "removeoutport", ["public": "OUT2", "graph": .string(g)])?.command == "error")

            // Groups are kept.
            #expect(await a.ask("graph", "addgroup", ["name": "grp", "nodes": [.string(r)], "graph": .string(g)])?.command == "addgroup")
            #expect(await a.ask("graph", "addgroup", ["name": "grp", "nodes": [], "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "renamegroup", ["from": "grp", "to": "grp2", "graph": .string(g)])?.command == "renamegroup")
            #expect(await a.ask("graph", "changegroup", ["name": "grp2", "metadata": ["description": "x"], "graph": .string(g)])?.payload["metadata"] == ["description": "x"])
            #expect(await a.ask("graph", "removegroup", ["name": "grp2", "graph": .string(g)])?.command == "removegroup")
            #expect(await a.ask("graph", "removegroup", ["name": "grp2", "graph": .string(g)])?.command == "error")

            // renamenode: the participant of the new role is started, the edge follows.
            let r2 = r + "x"
            #expect(await a.ask("graph", "renamenode", ["from": .string(r), "to": .string(r2), "graph": .string(g)])?.payload
                    == ["from": .string(r), "to": .string(r2), "graph": .string(g)])
            #expect(await a.ask("graph", "renamenode", ["from": "ghost", "to": "x", "graph": .string(g)])?.command == "error")
            try await eventually("renamed edge bound", timeout: .seconds(30)) { daemon.log.contains("edge bound: \(r2) OUT -> IN \(d)") }

            // removenode: removeedge for each of its edges, then removenode; its participant is stopped.
            a.send("graph", "removenode", ["id": .string(d), "graph": .string(g)])
            #expect(await a.next("graph", "removeedge") == ["src": Self.port(r2, "out"), "tgt": Self.port(d, "in"), "graph": .string(g)])
            #expect(await a.next("graph", "removenode") == ["id": .string(d), "graph": .string(g)])
            #expect(await b.next("graph", "removenode") == ["id": .string(d), "graph": .string(g)])
            #expect(await a.ask("graph", "removenode", ["id": .string(d), "graph": .string(g)])?.command == "error")
            try await eventually("\(d) stopped", timeout: .seconds(30)) { daemon.log.contains("node \(d) stopped") }
            #expect(await a.ask("graph", "removeedge", ["src": Self.port(r2, "out"), "tgt": Self.port(d, "in"), "graph": .string(g)])?.command == "error")
            #expect(await a.ask("graph", "frobnicate", ["graph": .string(g)])?.command == "error")
            await a.close()
            await b.close()
        }
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func networkStartsStopsAndShowsTheDataOnEdges(_ kind: TestBrokers.Kind) async throws {
        try await withRuntime(kind) { daemon, port, _ in
            let c = WSClient(port: port)
            let g = "net\(UInt32.random(in: 0...UInt32.max))"
            let h = "h\(UInt32.random(in: 0...UInt32.max))", w = "w\(UInt32.random(in: 0...UInt32.max))"
            _ = await c.ask("graph", "clear", ["id": .string(g), "main": true])
            _ = await c.ask("graph", "addnode", ["id": .string(h), "component": "core/Repeat", "graph": .string(g)])
            _ = await c.ask("graph", "addnode", ["id": .string(w), "component": "core/Output", "graph": .string(g)])
            _ = await c.ask("graph", "addedge", ["src": Self.port(h, "out"), "tgt": Self.port(w, "in"), "graph": .string(g)])
            _ = await c.ask("graph", "addinitial", ["src": ["data": "Hello, world!"], "tgt": Self.port(h, "in"), "graph": .string(g)])
            #expect(await c.ask("network", "getstatus", ["graph": .string(g)], reply: "status")?.payload["started"] == false)

            let mark = c.cursor.value
            let started = try #require(await c.ask("network", "start", ["graph": .string(g)], reply: "started"))
            #expect(started.payload["started"] == true)
            #expect(started.payload["time"]?.stringValue != nil)
            let iip = try #require(await c.next("network", "data", timeout: .seconds(30)))
            #expect(iip == ["id": .string("DATA -> IN \(h)()"), "graph": .string(g), "tgt": Self.port(h, "in"), "data": "Hello, world!"])
            let data = try #require(await c.next("network", "data", timeout: .seconds(30)))
            #expect(data == ["id": .string("\(h)() OUT -> IN \(w)()"), "graph": .string(g), "src": Self.port(h, "out"),
                             "tgt": Self.port(w, "in"), "data": "Hello, world!"])
            // Output prints it: network:output carries the participant's stdout.
            // (It may come before the data events: searched from the start, not from where `next` left off.)
            #expect(await c.saw("network", since: mark, timeout: .seconds(20)) { $0["command"] == "output" && $0["payload"]?["message"] == .string("\(w): \"Hello, world!\"") })
            let status = try #require(await c.ask("network", "getstatus", ["graph": .string(g)], reply: "status"))
            #expect(status.payload["started"] == true)
            #expect(status.payload["running"] == false)

            // Exported ports: a packet in goes through h, the packet out comes back on the exported outport.
            _ = await c.ask("graph", "addinport", ["public": "in", "node": .string(h), "port": "in", "graph": .string(g)])
            _ = await c.ask("graph", "addoutport", ["public": "out", "node": .string(w), "port": "out", "graph": .string(g)])
            try await Task.sleep(for: .seconds(2))
            let sent = try #require(await c.ask("runtime", "packet", ["port": "in", "event": "data", "payload": ["n": 1], "graph": .string(g)], reply: "packetsent"))
            #expect(sent.payload == ["port": "in", "event": "data", "payload": ["n": 1], "graph": .string(g)])
            #expect(await c.next("runtime", timeout: .seconds(20)) { $0["command"] == "packet" && $0["payload"]?["port"] == "out" }?["payload"]?["payload"] == ["n": 1])
            #expect(await c.ask("runtime", "packet", ["port": "nope", "event": "data", "payload": 1, "graph": .string(g)], reply: "packetsent")?.command == "error")

            // network:edges: a client that watches no edge gets no data for it.
            #expect(await c.ask("network", "edges", ["graph": .string(g), "edges": []])?.payload == ["graph": .string(g), "edges": []])
            _ = await c.ask("runtime", "packet", ["port": "in", "event": "data", "payload": 2, "graph": .string(g)], reply: "packetsent")
            #expect(await c.next("runtime", timeout: .seconds(20)) { $0["command"] == "packet" && $0["payload"]?["payload"] == 2 } != nil)
            #expect(await c.next("network", timeout: .milliseconds(500)) { $0["command"] == "data" && $0["payload"]?["data"] == 2 } == nil)

            let stopped = try #require(await c.ask("network", "stop", ["graph": .string(g)], reply: "stopped"))
            #expect(stopped.payload["started"] == false)
            #expect(stopped.payload["running"] == false)
            #expect(await c.ask("network", "getstatus", ["graph": .string(g)], reply: "status")?.payload == ["graph": .string(g), "started": false, "running": false])
            #expect(await c.ask("network", "start", ["graph": "other"], reply: "started")?.payload == ["message": "Requested graph not found"])
            #expect(await c.ask("network", "start", [:], reply: "started")?.payload == ["message": "No graph specified"])
            #expect(await c.ask("network", "edges", ["graph": .string(g), "edges": 3])?.command == "error")
            await c.close()
        }
    }

    @Test func aParticipantWritingToStderrOrExitingIsAProcessError() async throws {
        // A component whose command fails at once: stderr, then exit 3.
        try await withRuntime(.mqtt, library: "\"Fail\": \"/bin/sh -c 'echo boom >&2; exit 3'\"") { _, port, _ in
            let c = WSClient(port: port)
            let g = "pe\(UInt32.random(in: 0...UInt32.max))"
            _ = await c.ask("graph", "clear", ["id": .string(g)])
            _ = await c.ask("graph", "addnode", ["id": "f", "component": "Fail", "graph": .string(g)])
            let e1 = try #require(await c.next("network", "processerror", timeout: .seconds(20)))
            #expect(e1["id"] == "f")
            #expect(e1["graph"] == .string(g))
            let errors = [e1, await c.next("network", "processerror", timeout: .seconds(20)) ?? .null].compactMap { $0["error"]?.stringValue }
            #expect(errors.contains("boom"))
            _ = await c.ask("graph", "removenode", ["id": "f", "graph": .string(g)])
            await c.close()
        }
    }

    @Test func withASecretAClientWithoutItIsReadOnly() async throws {
        try await withRuntime(.mqtt, ["--secret", "s3cr3t"]) { _, port, _ in
            let c = WSClient(port: port)
            let ro = try #require(await c.ask("runtime", "getruntime", reply: "runtime"))
            let caps = ro.payload["capabilities"]?.arrayValue ?? []
            #expect(caps.contains("graph:readonly"))
            #expect(!caps.contains("protocol:graph"))
            #expect(!caps.contains("network:control"))
            #expect(ro.payload["allCapabilities"]?.arrayValue?.contains("protocol:graph") == true)
            let graph = try #require(ro.payload["graph"])
            #expect(await c.ask("graph", "addnode", ["id": "n", "component": "core/Drop", "graph": graph])?.command == "error")
            #expect(await c.ask("graph", "addnode", ["id": "n", "component": "core/Drop", "graph": graph], secret: "wrong")?.command == "error")
            #expect(await c.ask("network", "stop", ["graph": graph], reply: "stopped")?.command == "error")
            #expect(await c.ask("component", "source", ["name": "X", "language": "python", "code": ""], reply: "component")?.command == "error")
            #expect(await c.ask("graph", "clear", ["id": "x"])?.command == "error")
            // Reading is allowed.
            #expect(await c.ask("network", "getstatus", ["graph": graph], reply: "status")?.command == "status")
            let rw = try #require(await c.ask("runtime", "getruntime", reply: "runtime", secret: "s3cr3t"))
            #expect(rw.payload["capabilities"]?.arrayValue?.contains("protocol:graph") == true)
            #expect(await c.ask("graph", "addnode", ["id": "n", "component": "core/Drop", "graph": graph], secret: "s3cr3t")?.command == "addnode")
            // Nothing echoes the secret.
            #expect(!c.raw.value.contains { $0.contains("s3cr3t") })
            await c.close()
        }
    }

    @Test func aBadFrameGetsAnErrorReplyAndNothingElse() async throws {
        try await withRuntime(.mqtt) { daemon, port, _ in
            let c = WSClient(port: port)
            for frame in ["not json", "[]", "{\"protocol\": 1, \"command\": \"x\"}", "{\"protocol\":\"graph\"}",
                          "{\"protocol\":\"graph\",\"command\":\"addnode\",\"payload\":[]}", "{\"protocol\":\"nope\",\"command\":\"x\"}",
                          String(repeating: "[", count: 100_000)] {
                c.sendText(frame)
                let proto = frame.contains("\"graph\",\"command\"") ? "graph" : "runtime"
                let e = await c.next(proto, timeout: .seconds(10)) { $0["command"] == "error" }
                #expect(e?["payload"]?["message"]?.stringValue != nil, "\(frame.prefix(60))")
            }
            // Still serving.
            #expect(await c.ask("runtime", "getruntime", reply: "runtime")?.command == "runtime")
            #expect(daemon.process.isRunning)
            // A client that asks for no sub-protocol is served too.
            let plain = WSClient(port: port, subprotocol: nil)
            #expect(await plain.ask("runtime", "getruntime", reply: "runtime")?.command == "runtime")
            await plain.close()
            await c.close()
        }
    }

    @Test func componentListSourcesAndGraphSource() async throws {
        try await withRuntime(.mqtt) { _, port, dir in
            let c = WSClient(port: port)
            c.send("component", "list")
            var names: [String] = []
            while let m = await c.next("component", timeout: .seconds(10), where: { ["component", "componentsready"].contains($0["command"]?.stringValue ?? "") }) {
                if m["command"] == "componentsready" {
                    #expect(m["payload"] == .int(names.count))
                    break
                }
                names.append(m["payload"]?["name"]?.stringValue ?? "")
                #expect(m["payload"]?["inPorts"]?.arrayValue != nil)
                #expect(m["payload"]?["subgraph"] == false)
            }
            for n in ["core/Repeat", "core/Drop", "core/Output", "Repeat"] { #expect(names.contains(n), "\(n)") }

            let graph = try #require(await c.ask("runtime", "getruntime", reply: "runtime")?.payload["graph"])
            let src = try #require(await c.ask("component", "getsource", ["name": graph], reply: "source"))
            #expect(src.payload["language"] == "json")
            #expect((try? JSONValue(parsing: src.payload["code"]?.stringValue ?? ""))?["processes"] != nil)

            let code = "#!/usr/bin/env python3\nprint('hi')\n"
            let set = try #require(await c.ask("component", "source", ["name": "Hello", "language": "python", "code": .string(code)], reply: "component"))
            #expect(set.payload["name"] == "Hello")
            #expect(FileManager.default.fileExists(atPath: dir.path("components/Hello.py")))
            let get = try #require(await c.ask("component", "getsource", ["name": "Hello"], reply: "source"))
            #expect(get.payload["code"] == .string(code))
            #expect(get.payload["language"] == "python")
            #expect(await c.ask("component", "getsource", ["name": "Nope"], reply: "source")?.command == "error")
            // A path in the name is reduced to its last part: nothing is written outside --componentdir.
            #expect(await c.ask("component", "source", ["name": "../evil", "language": "python", "code": ""], reply: "component")?.command == "component")
            #expect(!FileManager.default.fileExists(atPath: dir.path("evil.py")))
            #expect(await c.ask("component", "source", ["name": "a b", "language": "python", "code": ""], reply: "component")?.command == "error")
            #expect(await c.ask("component", "source", ["name": "X", "language": "cobol", "code": ""], reply: "component")?.command == "error")
            await c.close()
        }
    }

    @Test func autoSaveWritesTheGraphBackAsFbp() async throws {
        try await withRuntime(.mqtt, ["--graph", "main.fbp", "--auto-save", "true"], setup: { dir in
            try "a(core/Drop)\n".write(toFile: dir.path("main.fbp"), atomically: true, encoding: .utf8)
        }) { _, port, dir in
            let c = WSClient(port: port)
            let graph = try #require(await c.ask("runtime", "getruntime", reply: "runtime")?.payload["graph"])
            #expect(graph == "main")
            _ = await c.ask("graph", "addnode", ["id": "b", "component": "core/Repeat", "graph": graph])
            _ = await c.ask("graph", "addedge", ["src": Self.port("b", "out"), "tgt": Self.port("a", "in"), "graph": graph])
            _ = await c.ask("graph", "addinitial", ["src": ["data": "x"], "tgt": Self.port("b", "in"), "graph": graph])
            try await eventually("main.fbp rewritten", timeout: .seconds(10)) {
                let text = (try? String(contentsOfFile: dir.path("main.fbp"), encoding: .utf8)) ?? ""
                return text.contains("OUT -> IN a") && text.contains("-> IN b")
            }
            let text = try String(contentsOfFile: dir.path("main.fbp"), encoding: .utf8)
            #expect(text.contains("'x' -> IN b") || text.contains("\"x\" -> IN b"), "\(text)")
            #expect(text.contains("OUT -> IN a"), "\(text)")
            #expect(!text.hasPrefix("{"), "stays .fbp")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.contains("autosave") }
            #expect(leftovers.isEmpty)
            await c.close()
        }
    }

    @Test func frontPageAndStartLines() async throws {
        try await withRuntime(.mqtt, ["--runtime-id", "rt-1", "--ide", "https://ide.example"]) { daemon, port, _ in
            #expect(daemon.log.contains("msgflo started on ws://127.0.0.1:\(port)"))
            #expect(daemon.log.contains("Open in Flowhub: https://ide.example#runtime/endpoint?protocol%3Dwebsocket%26address%3Dws%3A%2F%2F127.0.0.1%3A\(port)%26id%3Drt-1"))
            let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            let page = String(decoding: data, as: UTF8.self)
            #expect(page.contains("Open in Flowhub"))
            #expect(page.contains("https://ide.example"))
            let c = WSClient(port: port)
            #expect(await c.ask("runtime", "getruntime", reply: "runtime")?.payload["id"] == "rt-1")
            await c.close()
        }
    }
}
}
