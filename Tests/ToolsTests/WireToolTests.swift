import Foundation
import MsgFlo
import MsgFloTransports
import TestSupport
import Testing

/// Issue 10, items 9 and 10: silent loss by typo, and start-up errors that name their cause, against the real brokers.
@Suite(.serialized) struct WireToolTests {
    static func transport(_ kind: TestBrokers.Kind) async throws -> any Transport {
        try await ToolProcessTests.transport(kind)
    }

    static func env(_ kind: TestBrokers.Kind) throws -> [String: String] { try ToolProcessTests.env(kind) }

    // MARK: item 9: mandatory publish, near matches, dump of nothing

    @Test func sendIntoAQueueNobodyHasFailsWithNearMatch() async throws {
        let role = TestBrokers.unique("shout")
        let t = try await Self.transport(.amqp)
        try await t.declareInport("\(role).IN")
        let r = try await ToolProcess.run("msgflo-send-message", ["--queue", "\(role).in", "--json", "1"],
                                          env: try Self.env(.amqp), timeout: .seconds(30))
        #expect(r.status == 1, "\(r)")
        #expect(r.stderrLines.count == 1, "\(r)")
        #expect(r.stderr.contains("no queue '\(role).in'"), "\(r)")
        #expect(r.stderr.contains("did you mean \(role).IN?"), "\(r)")
        // Into the right one: exit 0 and the message is there.
        let ok = try await ToolProcess.run("msgflo-send-message", ["--queue", "\(role).IN", "--json", "2"],
                                           env: try Self.env(.amqp), timeout: .seconds(30))
        #expect(ok.status == 0, "\(ok)")
        #expect(try await t.queueDepth("\(role).IN") == 1)
        await t.close()
    }

    @Test func sendWithAName() async throws {
        // A name no broker can take is a one-line error before anything connects.
        for (kind, name) in [(TestBrokers.Kind.amqp, String(repeating: "é", count: 200)), (.mqtt, "a/+/b"), (.mqtt, "a\u{1}")] {
            let r = try await ToolProcess.run("msgflo-send-message", ["--queue", name, "--json", "1"],
                                              env: try Self.env(kind), timeout: .seconds(30))
            #expect(r.status == 1, "\(r)")
            #expect(r.stderrLines.count == 1, "\(r)")
            #expect(r.stderr.contains("--queue"), "\(r)")
        }
    }

    @Test func dumpOfNeitherQueueNorExchangeSaysSoAndCreatesNothing() async throws {
        let name = TestBrokers.unique("nothing.OUT")
        let t = try await Self.transport(.amqp)
        let r = try await ToolProcess.run("msgflo-dump-message", ["--queue", name], env: try Self.env(.amqp),
                                          timeout: .seconds(30))
        #expect(r.status == 1, "\(r)")
        #expect(r.stderrLines.count == 1, "\(r)")
        #expect(r.stderr.contains("no queue or exchange '\(name)'"), "\(r)")
        #expect(try await t.exchangeExists(name) == false)
        // --create: declared as an outport, and the dump waits on it.
        let dump = try await ToolProcess.start("msgflo-dump-message", ["--queue", name, "--create"], env: try Self.env(.amqp))
        var created = false
        for _ in 0..<200 where !created {
            created = try await t.exchangeExists(name) == true
            if !created { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(created)
        var n = 0
        while dump.isRunning && n < 100 {
            n += 1
            try await t.send(toOutport: name, Message(text: "\(n)"))
            try await Task.sleep(for: .milliseconds(200))
        }
        let done = await dump.wait(timeout: .seconds(10))
        #expect(done.status == 0, "\(done)")
        await t.close()
    }

    // MARK: item 10: start-up errors name their cause

    /// The broker URLs of the permanent failures, each with a word its message must hold.
    static func misconfigured() throws -> [(url: String, cause: String)] {
        var wrongPassword = try TestBrokers.url(.amqp)
        wrongPassword.password = "not-the-password"
        var noVhost = try TestBrokers.url(.amqp)
        noVhost.vhost = TestBrokers.unique("no-such-vhost")
        let amqps = try TestBrokers.tlsURL(.amqp)
        let mqtts = try TestBrokers.tlsURL(.mqtt)
        let plainToTLS = "amqp://guest:guest@\(amqps.host):\(amqps.port)/"
        let otherCA = "/etc/ssl/certs/ca-certificates.crt"   // a CA bundle without the test CA
        return [
            (wrongPassword.unredacted, "password"),
            (noVhost.unredacted, "virtual host"),
            (amqps.unredacted + "?cacertfile=" + otherCA, "verification"),
            (mqtts.unredacted + "?cafile=" + otherCA, "TLS"),
            (plainToTLS, "TLS port"),
            ("mqtt://\(mqtts.host):\(mqtts.port)", "TLS port"),
        ]
    }

    @Test func toolsAndDaemonNameTheCauseAndExit1() async throws {
        for (url, cause) in try Self.misconfigured() {
            let tool = try await ToolProcess.run("msgflo-send-message", ["--queue", "q", "--json", "1", "--broker", url],
                                                 timeout: .seconds(30))
            #expect(tool.status == 1, "\(url): \(tool)")
            #expect(tool.stderrLines.count == 1, "\(url): \(tool)")
            #expect(tool.stderr.contains(cause), "\(url): \(tool)")
            #expect(!tool.stderr.contains("wrong user or password") || cause == "password", "\(url): \(tool)")
            #expect(!tool.stderr.contains("not-the-password"))
            let dir = try ToolProcess.tempDir()   // no package.json: the daemon starts no participants
            defer { try? FileManager.default.removeItem(at: dir) }
            let daemon = try await ToolProcess.run("msgflo", ["--broker", url], cwd: dir, timeout: .seconds(30))
            #expect(daemon.status == 1, "\(url): \(daemon)")
            let errors = daemon.stderrLines.filter { $0.hasPrefix("msgflo: ") }
            #expect(errors.count == 1, "\(url): \(daemon)")
            #expect(errors.first?.contains(cause) == true, "\(url): \(daemon)")
            #expect(daemon.elapsed < .seconds(20), "\(url): \(daemon.elapsed)")
        }
    }

    @Test func participantGivesUpAfterConnectTimeout() async throws {
        let r = try await ToolProcess.run("msgflo-participant", ["Repeat", "r", "--broker", "amqp://127.0.0.1:1/",
                                                                 "--connect-timeout", "2"], timeout: .seconds(30))
        #expect(r.status == 1, "\(r)")
        let last = r.stderrLines.last ?? ""
        #expect(last.contains("gave up") && last.contains("--connect-timeout"), "\(r)")
        #expect(r.stderrLines.dropLast().allSatisfy { $0.contains("waiting for the broker (attempt") }, "\(r)")
        // A wrong password is not waited for.
        var wrong = try TestBrokers.url(.amqp)
        wrong.password = "nope"
        let w = try await ToolProcess.run("msgflo-participant", ["Repeat", "r", "--broker", wrong.unredacted],
                                          timeout: .seconds(30))
        #expect(w.status == 1, "\(w)")
        #expect(w.stderrLines.count == 1 && w.stderr.contains("password"), "\(w)")
    }

    @Test(arguments: TestBrokers.Kind.allCases)
    func participantStartedBeforeItsBrokerWaitsBrokerRestart(_ kind: TestBrokers.Kind) async throws {
        try await TestBrokers.script(["down", kind.rawValue])
        let role = TestBrokers.unique("early")
        let p: ToolProcess.Running
        do {
            p = try await ToolProcess.start("msgflo-participant", ["Repeat", role], env: try Self.env(kind))
            let waiting = await p.process.waitForStderr(timeout: .seconds(30)) { $0.contains("waiting for the broker (attempt 2)") }
            #expect(waiting, "stderr: \(p.stderr)")
            #expect(p.isRunning)
        } catch {
            try? await TestBrokers.script(["up", kind.rawValue])
            throw error
        }
        defer { p.signal(SIGKILL) }
        try await TestBrokers.script(["up", kind.rawValue])
        let ready = await p.waitForOutput("\(role)(Repeat) connected to", timeout: .seconds(60))
        #expect(ready, "stdout: \(p.stdout) stderr: \(p.stderr)")
        // It works: a message into its inport comes out of its outport.
        let t = try await Self.transport(kind)
        let tap = try await t.subscribeData("\(role).OUT")
        var got: Delivery? = nil
        for i in 0..<50 where got == nil {
            try await t.send(toInport: "\(role).IN", Message(json: .int(i)))
            got = await withTaskGroup(of: Delivery?.self) { g in
                g.addTask { for await d in tap { return d }; return nil }
                g.addTask { try? await Task.sleep(for: .milliseconds(300)); return nil }
                let first = await g.next() ?? nil
                g.cancelAll()
                return first
            }
        }
        #expect(got != nil)
        p.signal(SIGTERM)
        let stopped = await p.wait(timeout: .seconds(15))
        #expect(stopped.status == 0, "\(stopped)")
        await tap.cancel()
        await t.close()
    }
}
