import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MsgFlo
import Synchronization
import TestSupport
import Testing

/// Headless Chromium (Debian's `chromium`) driven over Chrome's DevTools protocol on its WebSocket, from Swift.
///
/// No HTTP endpoint of Chrome's is used: Chrome picks its own debugging port (`--remote-debugging-port=0`) and writes
/// it, with the browser target's WebSocket path, into `DevToolsActivePort` in its profile; the test connects to the
/// browser target, creates a page (`Target.createTarget`) and talks to it through a flat session
/// (`Target.attachToTarget`, `flatten`). Everything waits with a limit, and `stop()` kills what is left.
final class HeadlessChrome: Sendable {
    let process: TestProcess
    let profile: TempDir
    let browser: DevTools

    static var executable: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    init() async throws {
        let exe = try #require(Self.executable, "chromium is not installed (Scripts/bootstrap installs it)")
        let profile = try TempDir()
        // --no-sandbox: CI runs as root, where Chrome's sandbox refuses to start. --remote-allow-origins: the
        // WebSocket client sends `Origin: ws://127.0.0.1`, which Chrome refuses unless it is allowed.
        let p = try await TestProcess(exe, ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                       "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                       "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                       "--remote-allow-origins=ws://127.0.0.1", "--user-data-dir=\(profile.url.path)", "--window-size=1280,800", "about:blank"],
                                      stdout: .discard, stderr: .discard)
        // Chrome writes its DevTools port and the browser target's path into the profile once it listens.
        let file = profile.path("DevToolsActivePort")
        var found: (port: Int, path: String)?
        do {
            try await eventually("chromium's DevToolsActivePort", timeout: .seconds(60)) {
                if !p.isRunning { throw WaitTimeout(description: "chromium exited with status \(p.terminationStatus)") }
                let lines = ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n")
                if lines.count >= 2, let port = Int(lines[0]), lines[1].hasPrefix("/devtools/browser/") {
                    found = (port, String(lines[1]))
                }
                if found == nil { try await Task.sleep(for: .milliseconds(100)) }
                return found != nil
            }
        } catch {
            Self.kill(p)
            profile.remove()
            throw error
        }
        self.process = p
        self.profile = profile
        self.browser = DevTools(WSClient(port: found!.port, path: found!.path, subprotocol: nil))
    }

    /// A new page (tab) and a session attached to it.
    func page() async throws -> DevTools {
        let target = try await browser.call("Target.createTarget", ["url": "about:blank"])
        let id = try #require(target["targetId"]?.stringValue, "createTarget: \(target.serialized)")
        let attached = try await browser.call("Target.attachToTarget", ["targetId": .string(id), "flatten": true])
        let session = try #require(attached["sessionId"]?.stringValue, "attachToTarget: \(attached.serialized)")
        return DevTools(browser.ws, session: session, nextID: browser.nextID)
    }

    func stop() async {
        // Browser.close lets Chrome end its helper processes itself; then SIGTERM, then SIGKILL.
        _ = try? await browser.call("Browser.close", timeout: .seconds(5))
        if await !process.wait(timeout: .seconds(5)) { await process.stop(grace: .seconds(5)) }
        await browser.close()
        profile.remove()
    }

    static func kill(_ p: TestProcess) { p.signal(SIGKILL) }
}

/// One DevTools session: `call` sends a command (to the browser target, or to a page's flat session) and waits for
/// the reply with its id.
final class DevTools: Sendable {
    let ws: WSClient
    let session: String?
    let nextID: Locked<Int>
    init(_ ws: WSClient, session: String? = nil, nextID: Locked<Int> = Locked(0)) {
        self.ws = ws
        self.session = session
        self.nextID = nextID
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    @discardableResult
    func call(_ method: String, _ params: JSONObject = [:], timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let id = nextID.withLock { $0 += 1; return $0 }
        var m: JSONObject = ["id": .int(id), "method": .string(method), "params": .object(params)]
        if let session { m["sessionId"] = .string(session) }
        ws.sendText(JSONValue.object(m).serialized)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let reply = ws.all.last(where: { $0["id"]?.intValue == id }) {
                if let error = reply["error"] { throw Failure(description: "\(method): \(error.serialized)") }
                return reply["result"] ?? .null
            }
            if ws.closed.value {
                var why = "closed"
                do { try await ws.task.value } catch { why = "\(error)" }
                throw Failure(description: "\(method): the DevTools WebSocket ended: \(why)")
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
extension RuntimeDaemons {
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

    /// `eventually` for the page: one DevTools round trip every 100 ms rather than back to back.
    func inPage(_ what: String, timeout: Duration, sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: () async throws -> Bool) async throws {
        try await eventually(what, timeout: timeout, sourceLocation: sourceLocation) {
            try await Task.sleep(for: .milliseconds(100))
            return try await condition()
        }
    }

    func nodeStates(_ page: DevTools) async throws -> [String: String] {
        guard let text = try await page.eval(Self.nodeStatesJS).stringValue,
              let pairs = try JSONValue(parsing: text).arrayValue else { return [:] }
        var out: [String: String] = [:]
        for p in pairs {
            if let k = p.arrayValue?.first?.stringValue { out[k] = p.arrayValue?.last?.stringValue ?? "" }
        }
        return out
    }

    /// Whatever happens, the test ends within its limit (every wait below has its own, shorter one).
    @Test(.timeLimit(.minutes(5)), arguments: TestBrokers.Kind.allCases)
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
            await chrome.stop()
            await net.stop()
        }
        do {
            try await page.call("Page.enable")
            try await page.call("Page.navigate", ["url": .string(net.base + "/")])
            let (a, b, c) = net.roles

            // The three nodes appear, alive once their participants have announced themselves.
            try await inPage("three alive nodes in the page", timeout: .seconds(60)) {
                let s = try await nodeStates(page)
                return s[a] == "alive" && s[b] == "alive" && s[c] == "alive"
            }
            try await inPage("edges wired in the page", timeout: .seconds(60)) {
                try await page.eval("document.querySelectorAll('path.edge[data-state=wired]').length").intValue == 2
            }
            #expect(try await page.eval("document.getElementById('flowhub_url').textContent") == "Open in Flowhub")
            #expect(try await page.eval("document.getElementById('status').textContent")
                .stringValue?.contains("broker connected") == true)

            // Click the edge a -> b (a real mouse click at the middle of its curve): its last messages show.
            _ = try await net.tapsLive()
            try await net.send(3)
            let point = try await page.eval("""
                (function () { var p = document.querySelector('path.edge-hit[data-src="\(a).out"]');
                  var m = p.getPointAtLength(p.getTotalLength() / 2); var t = p.getScreenCTM();
                  return [m.x * t.a + m.y * t.c + t.e, m.x * t.b + m.y * t.d + t.f]; })()
                """).arrayValue
            let x = try #require(point?.first?.doubleValue), y = try #require(point?.last?.doubleValue)
            try await page.click(x: x, y: y)
            try await inPage("the edge's messages in the panel", timeout: .seconds(30)) {
                let shown = try await page.eval("document.querySelectorAll('#messages pre.message').length").intValue ?? 0
                return shown >= 3
            }
            let first = try await page.eval("document.querySelector('#messages pre.message').textContent").stringValue ?? ""
            #expect(first.contains("hello <b>&"), "\(first)")
            #expect(try await page.eval("document.querySelectorAll('#messages b').length") == 0, "message text is not markup")
            try await inPage("a rate label on the edge", timeout: .seconds(10)) {
                let labels = try await page.eval("Array.from(document.querySelectorAll('text.rate')).map(function (t) { return t.textContent; }).join('|')")
                return labels.stringValue?.contains("msg/s") == true
            }
            try await screenshot(page, "\(kind.rawValue)-wired.png")

            // Kill c: its node turns lost within its heartbeat (2 s), and back when it returns. On MQTT the edge into
            // it turns pending (nobody subscribes its topic); on AMQP it stays wired, since c's queue stays bound and
            // keeps what b sends, which the page shows as c's queued count.
            net.participants[c]!.kill9()
            try await inPage("c lost in the page", timeout: .seconds(30)) {
                let s = try await nodeStates(page)[c]
                return s == "lost" || s == "pending"
            }
            #expect(try await nodeStates(page)[a] == "alive")
            // That change came as a delta (only what changed), after one whole state.
            let cInDelta = try await page.eval("liveEvents.deltaNodes.get(\(JSONValue.string(c).serialized)) || ''").stringValue
            #expect(cInDelta == "lost" || cInDelta == "pending", "c's change in a delta: \(cInDelta ?? "none")")
            #expect(try await page.eval("liveEvents.state").intValue == 1)
            #expect(try await page.eval("liveEvents.delta").intValue ?? 0 >= 1)
            if kind == .mqtt {
                try await inPage("edge into c pending", timeout: .seconds(30)) {
                    try await page.eval("document.querySelectorAll('path.edge[data-state=pending]').length").intValue == 1
                }
            } else {
                try await net.send(4)
                try await inPage("c's queue holding the messages in the page", timeout: .seconds(40)) {
                    // The page's own map of node id -> its SVG group and queued-count label.
                    try await page.eval("nodes.get(\(JSONValue.string(c).serialized)).depth.textContent") == "queued: 4"
                }
                #expect(try await page.eval("document.querySelectorAll('path.edge[data-state=wired]').length").intValue == 2)
            }
            // Click the lost node: its process is listed as lost.
            let nodeBox = try await page.eval("""
                (function () { var r = document.querySelector('g.node[data-id="\(c)"] rect.box').getBoundingClientRect();
                  return [r.x + r.width / 2, r.y + r.height / 2]; })()
                """).arrayValue
            try await page.click(x: try #require(nodeBox?.first?.doubleValue), y: try #require(nodeBox?.last?.doubleValue))
            try await inPage("the node panel lists the lost process", timeout: .seconds(15)) {
                (try await page.eval("(document.getElementById('processes') || {}).textContent || ''").stringValue ?? "").contains("LOST")
            }
            try await screenshot(page, "\(kind.rawValue)-lost.png")

            net.participants[c] = try await ParticipantProcess("Drop", c, broker: net.broker)
            try await inPage("c alive again in the page", timeout: .seconds(30)) { try await nodeStates(page)[c] == "alive" }
            try await inPage("both edges wired again", timeout: .seconds(60)) {
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
}
