import Foundation
import MsgFlo
import MsgFloParticipant
import Subprocess
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

/// Writing to a program that closed its input must fail with EPIPE, not end this process: SIGPIPE is ignored
/// once, before the first program runs (as servers do; sockets here are written with MSG_NOSIGNAL anyway).
let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

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

    static func rawEnvironment(_ env: [String: String]) -> Environment {
        .custom(env.compactMap { k, v in
            // NUL-terminated here: swift-subprocess 1.0.2 hands these bytes to exec as they are.
            let entry = Array("\(k)=\(v)".utf8)
            return entry.contains(0) ? nil : entry + [0]
        })
    }

    static func executable(_ program: String) -> Executable {
        program.contains("/") ? .path(.init(program)) : .name(program)
    }

    /// Runs the program once; its standard output, or an error saying why it failed.
    static func runOnce(_ options: ExecOptions, input: [UInt8], environment: [String: String]) async throws -> [UInt8] {
        let name = SafeText.escape(options.program, limit: 80)
        let timedOut = MsgFloError(.timeout, "\(name) did not finish within \(options.timeout); killed")
        typealias Finished = (status: TerminationStatus, output: [UInt8], error: [UInt8])
        let result = try await withThrowingTaskGroup(of: Finished?.self) { group in
            group.addTask {
                do {
                    // The message is written by us, not by `input: .array(...)`: swift-subprocess 1.0 leaves the
                    // pipe open when that write fails (a program that exits without reading its input: EPIPE) and
                    // then stops the whole process with "FileDescriptor ... was not closed". Here a failed write is
                    // the program's business (it did not want its input), and the pipe is closed in every case.
                    ignoreSIGPIPE
                    let r = try await run(executable(options.program), arguments: Arguments(options.arguments),
                                          environment: rawEnvironment(environment), input: .inputWriter,
                                          output: .bytes(limit: options.outputLimit), error: .bytes(limit: 4096)) { execution in
                        _ = try? await execution.standardInputWriter.write(input)
                        try? await execution.standardInputWriter.finish()
                    }
                    return (r.terminationStatus, r.standardOutput, r.standardError)
                } catch let e as SubprocessError {
                    throw MsgFloError(.invalidArgument, "\(name) could not run: \(SafeText.escape(String(describing: e), limit: 300))")
                }
            }
            group.addTask {
                try await Task.sleep(for: options.timeout)
                return nil
            }
            guard let first = try await group.next() else { throw timedOut }
            group.cancelAll()  // the timeout: cancelling the run kills the program
            guard let r = first else { throw timedOut }
            return r
        }
        switch result.status {
        case .exited(0):
            return result.output
        case .exited(let code):
            throw MsgFloError(.invalidMessage, "\(name) exited with status \(code)" + stderrSuffix(result.error))
        case .signaled(let sig):
            throw MsgFloError(.invalidMessage, "\(name) was killed by signal \(sig)" + stderrSuffix(result.error))
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
    private let process = Mutex<(requests: AsyncStream<Request>.Continuation, task: Task<Void, Never>)?>(nil)

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
        let old = process.withLock { p -> (AsyncStream<Request>.Continuation, Task<Void, Never>)? in
            defer { p = nil }
            return p.map { ($0.requests, $0.task) }
        }
        old?.0.finish()
        old?.1.cancel()
    }

    private func startIfNeeded(environment: [String: String]) -> AsyncStream<Request>.Continuation {
        process.withLock { p in
            if let p { return p.requests }
            let (stream, continuation) = AsyncStream<Request>.makeStream()
            let options = self.options
            // Lives as long as the process: taken down by restart() (timeout) or when the program exits.
            let task = Task { [weak self] in
                await Self.serve(options, environment: environment, requests: stream)
                self?.forget(continuation)
            }
            p = (continuation, task)
            return continuation
        }
    }

    private func forget(_ c: AsyncStream<Request>.Continuation) {
        c.finish()
        process.withLock { p in p = nil }
    }

    private static func serve(_ options: ExecOptions, environment: [String: String],
                              requests: AsyncStream<Request>) async {
        let name = SafeText.escape(options.program, limit: 80)
        var inHand: Request? = nil
        let failure: MsgFloError
        ignoreSIGPIPE
        do {
            let result = try await run(ExecParticipant.executable(options.program),
                                       arguments: Arguments(options.arguments),
                                       environment: ExecParticipant.rawEnvironment(environment),
                                       input: .inputWriter, output: .sequence, error: .discarded) { execution in
                var lines = execution.standardOutput.strings(bufferingPolicy: .maxLineLength(options.outputLimit))
                    .makeAsyncIterator()
                for await request in requests {
                    inHand = request
                    _ = try await execution.standardInputWriter.write(request.line)
                    guard let line = try await lines.next() else { break }
                    inHand = nil
                    var bytes = Array(line.utf8)
                    while let last = bytes.last, last == 10 || last == 13 { bytes.removeLast() }
                    request.answer.resume(returning: bytes)
                }
                try? await execution.standardInputWriter.finish()
            }
            failure = MsgFloError(.closed, "\(name) exited (\(result.terminationStatus)) before answering")
        } catch {
            failure = MsgFloError(.closed, "\(name) failed: \(SafeText.escape(String(describing: error), limit: 300))")
        }
        inHand?.answer.resume(throwing: failure)
        // Requests queued meanwhile fail too; the next call starts the program again.
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
