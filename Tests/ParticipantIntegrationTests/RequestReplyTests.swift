import ExampleParticipants
import Foundation
import Logging
import MsgFlo
import MsgFloExec
import MsgFloParticipant
import MsgFloTransports
import Synchronization
import TestSupport
import Testing

/// Request/reply (issue 14) on the real brokers: through a three-stage flow, many callers at once, timeouts,
/// callers that go away, headers along a chain, and msgflo-exec.
@Suite("Request/reply on real brokers", .serialized)
struct RequestReplyTests {
    enum Wire: String, CaseIterable, Sendable { case amqp, mqtt5 }

    static func transport(_ wire: Wire) async throws -> any Transport {
        let logger = testLogger("test.rpc.\(wire.rawValue)")
        var url = try TestBrokers.url(wire == .amqp ? .amqp : .mqtt)
        if wire == .mqtt5 {
            url = try BrokerURL(parsing: url.unredacted + (url.options.isEmpty ? "?" : "&") + "protocol=5")
        }
        let t = try Transports.make(url, logger: logger)
        try await t.connect()
        return t
    }

    /// parse → compute → format; the first edge by the port's queue, the second by a binding (AMQP: the broker's;
    /// MQTT: the transport's router, which must carry the properties on).
    static func startFlow(_ wire: Wire, on t: any Transport) async throws -> (entry: String, stop: @Sendable () async -> Void) {
        let base = TestBrokers.unique("rpcflow")
        let parse = try await RPCExamples.parse.start(
            role: "\(base)-p", on: t, options: ParticipantOptions(queues: ["out": "\(base)-c.IN"]), logger: testLogger())
        let compute = try await RPCExamples.compute.start(role: "\(base)-c", on: t, logger: testLogger())
        let format = try await RPCExamples.format.start(role: "\(base)-f", on: t, logger: testLogger())
        try await t.addBinding(Binding(src: "\(base)-c.OUT", tgt: "\(base)-f.IN"))
        return ("\(base)-p.IN", {
            await parse.stop()
            await compute.stop()
            await format.stop()
        })
    }

    @Test("a call through a three-stage flow gets the flow's answer, with the caller's headers", arguments: Wire.allCases)
    func threeStageFlow(wire: Wire) async throws {
        let t = try await Self.transport(wire)
        let flow = try await Self.startFlow(wire, on: t)
        let callerTransport = try await Self.transport(wire)
        let caller = try await RPCCaller.start(on: callerTransport)
        var request = Message(json: .string("6 * 7"))
        request.properties.headers = ["x-trace": .string("t-1"), "traceparent": .string("00-1-2-01"), "private": .int(1)]
        let reply = try await caller.call(flow.entry, request, timeout: .seconds(15))
        #expect(reply.json == .string("6 * 7 = 42"))
        // Tracing headers survived three stages (and, on MQTT, a route); others are not forwarded.
        #expect(reply.properties.headers["x-trace"] == .string("t-1"))
        #expect(reply.properties.headers["traceparent"] == .string("00-1-2-01"))
        #expect(reply.properties.headers["private"] == nil)
        #expect(reply.properties.replyTo == nil)
        #expect(caller.strayReplies == 0)
        // A request the flow cannot parse gets no answer: the caller times out, nothing else breaks.
        await #expect(throws: MsgFloError.self) {
            _ = try await caller.call(flow.entry, Message(json: .string("nonsense")), timeout: .milliseconds(500))
        }
        let again = try await caller.call(flow.entry, Message(json: .string("1 + 2")), timeout: .seconds(15))
        #expect(again.json == .string("1 + 2 = 3"))
        await caller.close()
        await callerTransport.close()
        await flow.stop()
        await t.close()
    }

    @Test("a timeout or a cancellation ends its own call only; the caller goes on", arguments: Wire.allCases)
    func timeoutsAndCancellation(wire: Wire) async throws {
        let t = try await Self.transport(wire)
        let role = TestBrokers.unique("rpcecho")
        let echo = try await RPCExamples.echo.start(role: role, on: t, logger: testLogger())
        let ct = try await Self.transport(wire)
        let caller = try await RPCCaller.start(on: ct)
        // No queue or subscriber of that name: the request goes nowhere, no reply ever comes.
        let nowhere = TestBrokers.unique("nobody")
        func body(_ s: String) -> Message { Message(bytes: Array(s.utf8)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await #expect(throws: CancellationError.self) {
                    _ = try await caller.call(nowhere, body("long"), timeout: .seconds(60))
                }
            }
            // A shorter timeout beside it fails first, alone; an answered call goes through meanwhile.
            do {
                _ = try await caller.call(nowhere, body("short"), timeout: .milliseconds(300))
                Issue.record("a call nobody answers returned")
            } catch let e as MsgFloError {
                #expect(e.code == .timeout)
                #expect(e.message.contains(nowhere))
            }
            let answered = try await caller.call("\(role).IN", body("answered"), timeout: .seconds(15))
            #expect(answered.bytes == Array("answered".utf8))
            // The long call is cancelled: it ends with CancellationError, not with its timeout a minute later.
            group.cancelAll()
            try await group.waitForAll()
        }
        // With no call waiting the timeout sweeper idles; a new call's timeout still fires.
        try await Task.sleep(for: .milliseconds(200))
        await #expect(throws: MsgFloError.self) { _ = try await caller.call(nowhere, body("again"), timeout: .milliseconds(200)) }
        let last = try await caller.call("\(role).IN", body("last"), timeout: .seconds(15))
        #expect(last.bytes == Array("last".utf8))
        #expect(caller.strayReplies == 0)
        await caller.close()
        await ct.close()
        await echo.stop()
        await t.close()
    }

    @Test("1,000 concurrent calls are each answered to their own caller", arguments: Wire.allCases)
    func thousandConcurrentCalls(wire: Wire) async throws {
        let t = try await Self.transport(wire)
        let role = TestBrokers.unique("echo")
        let echo = try await RPCExamples.echo.start(role: role, on: t, options: ParticipantOptions(prefetch: 100), logger: testLogger())
        // Two callers sharing the load, to see that no reply crosses over.
        let ct1 = try await Self.transport(wire), ct2 = try await Self.transport(wire)
        let c1 = try await RPCCaller.start(on: ct1), c2 = try await RPCCaller.start(on: ct2)
        let wrong = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<1000 {
                group.addTask {
                    let body = Message(json: .object(["n": .int(i)]))
                    let reply = try await (i % 2 == 0 ? c1 : c2).call("\(role).IN", body, timeout: .seconds(60))
                    return reply.bytes != body.bytes
                }
            }
            var n = 0
            for try await bad in group where bad { n += 1 }
            return n
        }
        #expect(wrong == 0)
        #expect(c1.strayReplies == 0 && c2.strayReplies == 0)
        await c1.close()
        await c2.close()
        await ct1.close()
        await ct2.close()
        await echo.stop()
        await t.close()
    }

    @Test("a caller that goes away mid-call: its reply is dropped, the server goes on",
          arguments: Wire.allCases)
    func callerDiesMidCall(wire: Wire) async throws {
        let t = try await Self.transport(wire)
        let role = TestBrokers.unique("slow")
        let handled = Mutex<Int>(0)
        let slow = Participant(component: "Slow", inports: ["in"], outports: ["out"]) { _, msg, ctx in
            try await Task.sleep(for: .milliseconds(300))
            try await ctx.reply(msg)
            handled.withLock { $0 += 1 }
        }
        let server = try await slow.start(role: role, on: t, logger: testLogger())
        let dying = try await Self.transport(wire)
        // The reply subscription is kept until the caller goes: dropped at once (`_`), it was cancelled while the
        // request was on its way, and RabbitMQ refused the request ("fast reply consumer does not exist").
        let (replyTo, replies) = try await dying.replyQueue()
        try await dying.sendRouted(toInport: "\(role).IN", Message(bytes: Array("first".utf8),
                                                                     properties: MessageProperties(correlationID: "a", replyTo: replyTo)))
        await dying.close()
        withExtendedLifetime(replies) {}
        try await eventually("the server answered the gone caller") { handled.withLock { $0 } == 1 }
        let ct = try await Self.transport(wire)
        let caller = try await RPCCaller.start(on: ct)
        let reply = try await caller.call("\(role).IN", Message(bytes: Array("second".utf8)), timeout: .seconds(15))
        #expect(reply.bytes == Array("second".utf8))
        #expect(caller.strayReplies == 0)
        await caller.close()
        await ct.close()
        await server.stop()
        await t.close()
    }

    @Test("MQTT 3.1.1 cannot make a call: a clear error at once")
    func mqtt311Refuses() async throws {
        let t = try await connectedTransport(.mqtt)
        await #expect(throws: MsgFloError.self) { _ = try await RPCCaller.start(on: t) }
        await t.close()
    }

    // MARK: msgflo-exec

    static func exec(_ options: ExecOptions, on t: any Transport) async throws -> (role: String, p: RunningParticipant) {
        let role = TestBrokers.unique("exec")
        let p = try await ExecParticipant.make(options).start(
            role: role, on: t, options: ParticipantOptions(handlersOnTransportThread: false), logger: testLogger())
        return (role, p)
    }

    @Test("msgflo-exec with cat answers with the same bytes, and sends them on out")
    func execCat() async throws {
        let t = try await Self.transport(.amqp)
        let (role, p) = try await Self.exec(ExecOptions(program: "/bin/cat"), on: t)
        let out = try await Collector.outport("\(role).OUT", on: t)
        let caller = try await RPCCaller.start(on: t)
        let body: [UInt8] = Array("{\"a\": [1, 2]}".utf8) + [0, 255]
        let reply = try await caller.call("\(role).IN", Message(bytes: body), timeout: .seconds(15))
        #expect(reply.bytes == body)
        #expect(try await out.wait(for: 1)[0].bytes == body)
        await caller.close()
        await out.stop()
        await p.stop()
        await t.close()
    }

    @Test("msgflo-exec passes the properties in the environment, arguments as given (a shell only when asked)")
    func execEnvironment() async throws {
        let t = try await Self.transport(.amqp)
        let (role, p) = try await Self.exec(ExecOptions(
            program: "/bin/sh", arguments: ["-c", "printf '%s|%s|%s' \"$MSGFLO_CORRELATION_ID\" \"$MSGFLO_HEADERS\" \"$1\"", "sh", "a b;$c"]), on: t)
        let caller = try await RPCCaller.start(on: t)
        var request = Message(json: 1)
        request.properties.headers = ["x-k": .string("v")]
        let reply = try await caller.call("\(role).IN", request, timeout: .seconds(15))
        let text = try #require(reply.text)
        let parts = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        #expect(parts.count == 3)
        #expect(parts.first?.isEmpty == false)
        #expect(parts.count > 1 && (try? JSONValue(parsing: parts[1]))?["x-k"] == .string("v"))
        #expect(parts.last == "a b;$c")
        await caller.close()
        await p.stop()
        await t.close()
    }

    @Test("msgflo-exec: a program that never reads its input (1 MB of it) answers; the failed write is not a crash")
    func execProgramThatIgnoresItsInput() async throws {
        // swift-subprocess 1.0's own input writing left the pipe open after EPIPE and stopped the whole process
        // ("FileDescriptor ... was not closed"; seen in a full run). Several rounds, as the race is in the timing.
        let t = try await Self.transport(.amqp)
        let (role, p) = try await Self.exec(ExecOptions(program: "/bin/echo", arguments: ["ignored"]), on: t)
        let caller = try await RPCCaller.start(on: t)
        let big = String(repeating: "x", count: 1 << 20)
        for _ in 0..<5 {
            let reply = try await caller.call("\(role).IN", Message(json: .string(big)), timeout: .seconds(15))
            #expect(reply.text == "ignored\n")
        }
        await caller.close()
        await p.stop()
        await t.close()
    }

    @Test("msgflo-exec: a failing program and a hanging one send an error and dead-letter the message")
    func execFailureAndTimeout() async throws {
        let t = try await Self.transport(.amqp)
        for (options, expected) in [(ExecOptions(program: "/bin/sh", arguments: ["-c", "echo oops >&2; exit 3"]), "status 3"),
                                    (ExecOptions(program: "/bin/sleep", arguments: ["30"], timeout: .milliseconds(500)), "did not finish")] {
            let (role, p) = try await Self.exec(options, on: t)
            let errors = try await Collector.outport("\(role).ERROR", on: t)
            let deadQueue = TestBrokers.unique("test.dead")
            try await t.declareInport(deadQueue, options: QueueOptions(persistent: false))
            try await t.addBinding(Binding(.deadLetter, src: "\(role).IN", tgt: deadQueue))
            let dead = Collector(try await t.consume(deadQueue))
            try await t.send(toInport: "\(role).IN", Message(json: "x"))
            let e = try await errors.wait(for: 1, timeout: .seconds(15))[0].json
            let text = e?["message"]?.stringValue ?? ""
            #expect(text.contains(expected), "\(text)")
            if expected == "status 3" { #expect(text.contains("oops")) }
            #expect(try await dead.wait(for: 1)[0].json == "x")
            await dead.stop()
            await errors.stop()
            await p.stop()
        }
        await t.close()
    }

    @Test("msgflo-exec --lines keeps one process answering line by line, and restarts it after a hang")
    func execLines() async throws {
        let t = try await Self.transport(.amqp)
        let (role, p) = try await Self.exec(ExecOptions(program: "/bin/cat", lines: true), on: t)
        let caller = try await RPCCaller.start(on: t)
        for i in 0..<5 {
            let reply = try await caller.call("\(role).IN", Message(json: .object(["i": .int(i)])), timeout: .seconds(15))
            #expect(reply.json == .object(["i": .int(i)]))
        }
        await caller.close()
        await p.stop()
        // A program that never answers: the request times out, and the process is restarted for the next one.
        let script = "read l; while read l; do echo \"$l\"; done"
        let (role2, p2) = try await Self.exec(ExecOptions(program: "/bin/sh", arguments: ["-c", script],
                                                          timeout: .milliseconds(700), lines: true), on: t)
        let errors = try await Collector.outport("\(role2).ERROR", on: t)
        try await t.send(toInport: "\(role2).IN", Message(json: 1))
        #expect(try await errors.wait(for: 1, timeout: .seconds(15))[0].json?["message"]?.stringValue?.contains("did not answer") == true)
        await errors.stop()
        await p2.stop()
        await t.close()
    }
}

/// The executables of this issue, run as a user runs them.
@Suite("msgflo-call and msgflo-exec executables", .serialized)
struct CallExecutableTests {
    static func tool(_ name: String) -> URL {
        participantExecutable.deletingLastPathComponent().appendingPathComponent(name)
    }

    @Test("msgflo-call prints the reply of an msgflo-exec participant; no reply is one line and exit 1")
    func callAndTimeout() async throws {
        let amqp = try TestBrokers.url(.amqp).unredacted
        let role = TestBrokers.unique("execcat")
        let exec = try await Child(Self.tool("msgflo-exec"), [role, "--broker", amqp, "--", "/bin/cat"])
        defer { exec.terminate() }
        #expect(try await exec.ready().contains("connected"))
        let call = try await Child(Self.tool("msgflo-call"), ["--broker", amqp, "--queue", "\(role).IN", "--json", "{\"a\":1}",
                                                       "--header", "x-trace=1", "--timeout", "10"])
        #expect(try await call.exitCode() == 0)
        #expect(call.stdout == "{\"a\":1}\n")
        let queue = TestBrokers.unique("nobody")
        let t = try await connectedTransport(.amqp)
        try await t.declareInport(queue, options: QueueOptions(persistent: false))
        let late = try await Child(Self.tool("msgflo-call"), ["--broker", amqp, "--queue", queue, "--json", "1", "--timeout", "0.5"])
        #expect(try await late.exitCode() == 1)
        #expect(late.stdout.isEmpty)
        #expect(late.stderr.split(separator: "\n").count == 1 && late.stderr.contains("no reply"))
        exec.terminate()
        #expect(try await exec.exitCode() == 0)
        await t.close()
    }

    @Test("msgflo-exec fails at once, in one line, when PROGRAM is missing or not executable")
    func execMissingProgram() async throws {
        let amqp = try TestBrokers.url(.amqp).unredacted
        let notExecutable = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-exec-\(UInt32.random(in: 0...UInt32.max)).txt")
        try Data("echo hi\n".utf8).write(to: notExecutable)
        defer { try? FileManager.default.removeItem(at: notExecutable) }
        let cases: [(program: String, says: String)] = [
            ("no-such-program-\(UInt32.random(in: 0...UInt32.max))", "not found on PATH"),
            ("/no/such/dir/prog", "is not an executable file"),
            (notExecutable.path, "is not an executable file"),
            ("/tmp", "is not an executable file"),  // a directory
            ("bad\u{1b}[2Jname", "not found on PATH"),
        ]
        for c in cases {
            let exec = try await Child(Self.tool("msgflo-exec"), ["r", "--broker", amqp, "--", c.program, "arg"])
            #expect(try await exec.exitCode() == 1, "\(c.program)")
            #expect(exec.stdout.isEmpty)
            #expect(exec.stderr.split(separator: "\n").count == 1 && exec.stderr.contains(c.says), "\(exec.stderr)")
            #expect(!exec.stderr.contains("\u{1b}"))
        }
        // A bare name found on PATH is fine (the participant starts).
        let ok = try await Child(Self.tool("msgflo-exec"), [TestBrokers.unique("execok"), "--broker", amqp, "--", "cat"])
        #expect(try await ok.ready().contains("connected"))
        ok.terminate()
        #expect(try await ok.exitCode() == 0)
    }
}
