import Foundation
import MsgFlo
import MsgFloParticipant
import MsgFloProcess
import Synchronization

/// Any program as a participant (`msgflo-exec`, issue 14).
///
/// Per message (the default mode) the program is started, without a shell, with the arguments as given; the
/// message's bytes are its standard input and its properties are in its environment (``environment(for:inport:role:)``).
/// What it writes on standard output is sent on the outport, and, when the message has a reply-to, as the reply.
/// A non-zero exit, a signal, a timeout or a failure to start sends an error on the `error` port (with the first
/// bytes of its standard error) and dead-letters the message.
///
/// With `lines`, one long-lived process reads one request per line on its standard input and answers each with
/// one line on its standard output, in order (JSON lines: a message holding a newline is refused). When it exits,
/// the request in hand fails and the next one starts it again.
public struct ExecOptions: Sendable {
    public var program: String
    public var arguments: [String]
    public var inport: String
    public var outport: String
    /// Per message (or per line): how long the program may take.
    public var timeout: Duration
    public var lines: Bool
    /// Answer requests that have a reply-to (off for a stage in the middle of a flow that should not answer).
    public var reply: Bool
    /// The most bytes of standard output taken per message.
    public var outputLimit: Int

    public init(program: String, arguments: [String] = [], inport: String = "in", outport: String = "out",
                timeout: Duration = .seconds(60), lines: Bool = false, reply: Bool = true,
                outputLimit: Int = 16 << 20) {
        self.program = program
        self.arguments = arguments
        self.inport = inport
        self.outport = outport
        self.timeout = timeout
        self.lines = lines
        self.reply = reply
        self.outputLimit = outputLimit
    }
}

public enum ExecParticipant {
    /// The participant running `options.program`.
    public static func make(_ options: ExecOptions) -> Participant {
        let runner = options.lines ? LinesRunner(options) : nil
        let name = (options.program as NSString).lastPathComponent
        return Participant(
            component: "exec/" + String(name.prefix(64)), label: "Runs \(String(name.prefix(64))) per message",
            icon: "terminal",
            inports: [Port(options.inport)],
            outports: [Port(options.outport), Port("error", type: "object")]
        ) { port, msg, ctx in
            let env = environment(for: msg.properties, inport: port, role: ctx.role)
            let output: [UInt8]
            if let runner {
                output = try await runner.call(msg.bytes, environment: env)
            } else {
                output = try await runOnce(options, input: msg.bytes, environment: env)
            }
            let out = Message(bytes: output)
            try await ctx.send(options.outport, out)
            if options.reply { try await ctx.reply(out) }
        }
    }

    /// The process environment with the message's properties: MSGFLO_ROLE, MSGFLO_INPORT, MSGFLO_CORRELATION_ID,
    /// MSGFLO_REPLY_TO, MSGFLO_MESSAGE_ID, MSGFLO_CONTENT_TYPE, MSGFLO_TIMESTAMP, MSGFLO_PRIORITY,
    /// MSGFLO_EXPIRATION (ms), MSGFLO_HEADERS (a JSON object) and MSGFLO_PROPERTIES (all of them as JSON). Values
    /// come from the network: they are checked (UTF-8, no NUL, bounded) by the transports before they get here.
    public static func environment(for p: MessageProperties, inport: String, role: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MSGFLO_") || $0.key == "MSGFLO_BROKER" }
        env["MSGFLO_ROLE"] = role
        env["MSGFLO_INPORT"] = inport
        if let v = p.correlationID { env["MSGFLO_CORRELATION_ID"] = v }
        if let v = p.replyTo { env["MSGFLO_REPLY_TO"] = v }
        if let v = p.messageID { env["MSGFLO_MESSAGE_ID"] = v }
        if let v = p.contentType { env["MSGFLO_CONTENT_TYPE"] = v }
        if let v = p.timestamp { env["MSGFLO_TIMESTAMP"] = String(v) }
        if let v = p.priority { env["MSGFLO_PRIORITY"] = String(v) }
        if let v = p.expirationMilliseconds { env["MSGFLO_EXPIRATION"] = String(v) }
        env["MSGFLO_HEADERS"] = JSONValue.object(JSONObject(p.headers.mapValues(\.json))).serialized
        env["MSGFLO_PROPERTIES"] = p.json.serialized
        return env
    }

    /// The most bytes of a program's standard error kept for the error message.
    static let stderrLimit = 4096

    /// Runs the program once (``ChildProcess``; its own process group, killed whole on a timeout); its standard
    /// output, or an error saying why it failed. The message is written by a thread of its own (``InputPipe``): a
    /// program that exits without reading its input makes that write fail, which is the program's business.
    static func runOnce(_ options: ExecOptions, input: [UInt8], environment: [String: String]) async throws -> [UInt8] {
        let name = SafeText.escape(options.program, limit: 80)
        let started = ContinuousClock.now
        let running = Mutex<ChildProcess?>(nil)
        let out = CapturedOutput(limit: options.outputLimit, onOverflow: { running.withLock { $0 }?.signal(SIGKILL) })
        let err = CapturedOutput(limit: stderrLimit)
        let child: ChildProcess
        do {
            let stdin = try InputPipe(name: "msgflo-exec-in")
            let stdout: Int32, stderr: Int32
            do {
                stdout = try out.pipe(name: "msgflo-exec-out")
                do { stderr = try err.pipe(name: "msgflo-exec-err") } catch {
                    close(stdout)
                    throw error
                }
            } catch {
                close(stdin.childEnd)
                stdin.close()
                throw error
            }
            child = try await ChildProcess.spawn([options.program] + options.arguments, environment: environment,
                                                 stdin: stdin.childEnd, stdout: stdout, stderr: stderr)
            running.withLock { $0 = child }
            if out.overflowed { child.signal(SIGKILL) }
            stdin.writeAndClose(input)
        } catch {
            throw MsgFloError(.invalidArgument, "\(name) could not run: \(error)")
        }
        // The timeout covers the run and the end of its output (a background child of the program holding the pipe
        // is in its process group and killed with it).
        let exit = await child.wait(timeout: options.timeout)
        let left = options.timeout - (ContinuousClock.now - started)
        var drained = false
        if exit != nil, await out.waitForEnd(timeout: left) {
            drained = true
            _ = await err.waitForEnd(timeout: .seconds(1))  // its first bytes, for the error message
        }
        guard let exit, drained else {
            child.signal(SIGKILL)
            try Task.checkCancellation()
            throw MsgFloError(.timeout, "\(name) did not finish within \(options.timeout); killed")
        }
        if out.overflowed {
            throw MsgFloError(.invalidMessage, "\(name) wrote more than \(options.outputLimit) bytes on its standard output; killed")
        }
        switch exit {
        case .exited(0):
            return out.bytes
        case .exited(let code):
            throw MsgFloError(.invalidMessage, "\(name) exited with status \(code)" + stderrSuffix(err.bytes))
        case .signaled(let sig):
            throw MsgFloError(.invalidMessage, "\(name) was killed by signal \(sig)" + stderrSuffix(err.bytes))
        }
    }

    static func stderrSuffix(_ bytes: [UInt8]) -> String {
        let text = SafeText.escape(bytes: bytes.prefix(400), limit: 400)
        return text.isEmpty ? "" : ": \(text)"
    }
}

/// `--lines`: one long-lived process, one request line in, one answer line out, one at a time.
final class LinesRunner: Sendable {
    private struct Request: Sendable {
        let line: [UInt8]
        let answer: CheckedContinuation<[UInt8], any Error>
    }

    let options: ExecOptions
    /// One request at a time: the next waits until the answer of the one before came (or it failed).
    private let turn = AsyncGate()
    private struct Running {
        let id: UInt64
        let requests: AsyncStream<Request>.Continuation
        let task: Task<Void, Never>
    }
    private struct Slot {
        var running: Running?
        /// Numbers the processes.
        var generation: UInt64 = 0
    }
    private let process = Mutex(Slot())

    init(_ options: ExecOptions) { self.options = options }

    func call(_ body: [UInt8], environment: [String: String]) async throws -> [UInt8] {
        if body.contains(UInt8(ascii: "\n")) || body.contains(UInt8(ascii: "\r")) {
            throw MsgFloError(.invalidMessage, "--lines: the message holds a line break (send compact JSON)")
        }
        await turn.enter()
        defer { turn.leave() }
        let requests = startIfNeeded(environment: environment)
        let name = SafeText.escape(options.program, limit: 80)
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { c in
                    if case .terminated = requests.yield(Request(line: body + [10], answer: c)) {
                        c.resume(throwing: MsgFloError(.closed, "\(name) is not running"))
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: self.options.timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let answer = first else {
                self.restart()
                throw MsgFloError(.timeout, "\(name) did not answer within \(self.options.timeout); restarted")
            }
            return answer
        }
    }

    /// Stops the process (its next request starts a new one).
    func restart() {
        let old = process.withLock { p -> Running? in
            defer { p.running = nil }
            return p.running
        }
        old?.requests.finish()
        old?.task.cancel()
    }

    private func startIfNeeded(environment: [String: String]) -> AsyncStream<Request>.Continuation {
        process.withLock { p in
            if let running = p.running { return running.requests }
            let (stream, continuation) = AsyncStream<Request>.makeStream()
            let options = self.options
            p.generation += 1
            let id = p.generation
            // Lives as long as the process: taken down by restart() (timeout) or when the program exits.
            let task = Task { [weak self] in
                await Self.serve(options, environment: environment, requests: stream) { [weak self] in
                    self?.forget(id, continuation)
                }
            }
            p.running = Running(id: id, requests: continuation, task: task)
            return continuation
        }
    }

    /// The process `id` has ended: the next request starts a new one (unless a restart already made one).
    private func forget(_ id: UInt64, _ c: AsyncStream<Request>.Continuation) {
        process.withLock { p in if p.running?.id == id { p.running = nil } }
        c.finish()
    }

    private static func serve(_ options: ExecOptions, environment: [String: String],
                              requests: AsyncStream<Request>, ended: @Sendable () -> Void) async {
        let name = SafeText.escape(options.program, limit: 80)
        var inHand: Request? = nil
        let failure: MsgFloError
        do {
            // Its answers, line by line; a line longer than the output limit ends the process.
            let (lines, linesIn) = AsyncStream<[UInt8]?>.makeStream()
            let stdin = try InputPipe(name: "msgflo-exec-in")
            let stdout: Int32
            do {
                stdout = try OutputPipe.lines(name: "msgflo-exec-out", maximumLine: options.outputLimit) { line, end in
                    var bytes = Array(line)
                    while let last = bytes.last, last == 13 { bytes.removeLast() }
                    linesIn.yield(end == .full ? nil : bytes)
                } end: {
                    linesIn.finish()
                }
            } catch {
                close(stdin.childEnd)
                stdin.close()
                throw error
            }
            let child = try await ChildProcess.spawn([options.program] + options.arguments, environment: environment,
                                                     stdin: stdin.childEnd, stdout: stdout)
            var answers = lines.makeAsyncIterator()
            var tooLong = false
            await withTaskCancellationHandler {
                for await request in requests {
                    inHand = request
                    do { try await stdin.write(request.line) } catch { break }
                    guard let next = await answers.next() else { break }
                    guard let line = next else {
                        tooLong = true
                        break
                    }
                    inHand = nil
                    request.answer.resume(returning: line)
                }
            } onCancel: {
                child.signal(SIGKILL)
            }
            stdin.close()
            if tooLong || Task.isCancelled { child.signal(SIGKILL) }
            let exit = await child.waitUntilExit()
            failure = tooLong
                ? MsgFloError(.invalidMessage, "\(name) answered with a line longer than \(options.outputLimit) bytes; killed")
                : MsgFloError(.closed, "\(name) exited (\(exit)) before answering")
        } catch {
            failure = MsgFloError(.closed, "\(name) failed: \(SafeText.escape(String(describing: error), limit: 300))")
        }
        inHand?.answer.resume(throwing: failure)
        // Requests queued meanwhile fail too; the next call starts the program again.
        ended()
        for await r in requests { r.answer.resume(throwing: failure) }
    }
}

/// A FIFO lock for async code: `enter` waits its turn, `leave` lets the next one in.
final class AsyncGate: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func enter() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.busy {
                    s.busy = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.busy = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
