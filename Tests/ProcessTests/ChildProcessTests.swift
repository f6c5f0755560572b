import Foundation
@testable import MsgFloExec
import MsgFlo
import MsgFloProcess
import Synchronization
import Testing

/// MsgFloProcess: the project's one way to start a child (issue 11, item 4).
@Suite struct ChildProcessTests {
    static let env = ProcessInfo.processInfo.environment

    @Test func stdinStdoutStderrDirectoryAndEnvironmentReachTheChildAndItsExitIsAwaited() async throws {
        let out = CapturedOutput(), err = CapturedOutput()
        let input = try InputPipe()
        var env = Self.env
        env["MSGFLO_TEST_VALUE"] = "a b;$c"
        let child = try await ChildProcess.spawn(
            ["sh", "-c", "cat; printf '|%s|%s' \"$MSGFLO_TEST_VALUE\" \"$(pwd)\"; echo oops >&2; exit 7"],
            environment: env, directory: "/tmp", stdin: input.childEnd, stdout: out.pipe(), stderr: err.pipe())
        input.writeAndClose(Array("hello\n".utf8))
        #expect(await child.waitUntilExit() == .exited(7))
        #expect(!child.isRunning)
        #expect(await out.waitForEnd(timeout: .seconds(10)))
        #expect(await err.waitForEnd(timeout: .seconds(10)))
        #expect(out.text == "hello\n|a b;$c|/tmp")
        #expect(err.text == "oops\n")
    }

    @Test func aSignalledChildSaysSoAndAWaitTimesOutOrIsCancelledWithoutKillingIt() async throws {
        let child = try await ChildProcess.spawn(["sleep", "30"], environment: Self.env)
        #expect(await child.wait(timeout: .milliseconds(100)) == nil)
        let waiter = Task { await child.wait() }
        waiter.cancel()
        #expect(await waiter.value == nil)
        #expect(child.isRunning)
        child.signal(SIGTERM)
        #expect(await child.wait(timeout: .seconds(10)) == .signaled(SIGTERM))
        #expect(child.exit?.code == SIGTERM)
    }

    /// A participant's whole tree goes: `sh -c` keeps its program as its own child; the group signal reaches both.
    @Test func aSignalToTheChildReachesWhatItStarted() async throws {
        let out = CapturedOutput()
        let child = try await ChildProcess.spawn(["sh", "-c", "sleep 60 & echo $!; wait"], environment: Self.env,
                                                 stdout: out.pipe())
        #expect(await out.wait(timeout: .seconds(10)) { bytes, _ in bytes.contains(10) })
        let grandchild = try #require(Int32(out.text.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(grandchild, 0) == 0)
        child.signal(SIGKILL)
        #expect(await child.wait(timeout: .seconds(10)) == .signaled(SIGKILL))
        // The grandchild was reparented and is reaped by whoever adopted it: wait until it is gone.
        #expect(await out.waitForEnd(timeout: .seconds(10)), "the grandchild still holds the pipe")
    }

    /// Hostile input: a command or environment from a graph, a library file or a message is checked before it reaches
    /// exec, and the error names it escaped.
    @Test(arguments: [
        (["prog\u{1b}[2J\u{0}x"], [String: String](), "NUL"),
        (["sh", "-c", "a\u{0}b"], [:], "argument 2 holds a NUL byte"),
        (["sh", String(repeating: "x", count: 200_000)], [:], "argument 1 has 200000 bytes"),
        (["sh"], ["A=B": "1"], "bad environment variable"),
        (["sh"], ["": "1"], "bad environment variable"),
        (["sh"], ["K": "v\u{0}"], "bad environment variable"),
        (["sh"], ["K": String(repeating: "v", count: 140_000)], "has 140002 bytes"),
        (Array(repeating: String(repeating: "y", count: 100_000), count: 12), [:], "at most 1048576"),
        ([], [:], "empty command"),
        ([""], [:], "empty command"),
    ])
    func badCommandsAreRefusedInOneEscapedLine(_ arguments: [String], _ environment: [String: String], _ says: String) async throws {
        do {
            _ = try await ChildProcess.spawn(arguments, environment: environment)
            Issue.record("started \(arguments.map { $0.prefix(20) })")
        } catch {
            let text = error.description
            #expect(text.contains(says) || (says == "NUL" && text.contains("NUL")), "\(text.prefix(300))")
            #expect(!text.utf8.contains(0x1b) && !text.utf8.contains(0) && !text.contains("\n"))
            #expect(text.utf8.count < 600)
        }
    }

    @Test func aMissingProgramOrDirectoryIsAnErrorAndTheDescriptorsAreClosed() async throws {
        let out = CapturedOutput()
        await #expect(throws: SpawnError.self) {
            _ = try await ChildProcess.spawn(["no-such-program-\(UInt32.random(in: 0...UInt32.max))"], environment: Self.env,
                                             stdout: out.pipe())
        }
        // The write end was closed by the failed spawn: the capture sees its end.
        #expect(await out.waitForEnd(timeout: .seconds(10)))
        await #expect(throws: SpawnError.self) {
            _ = try await ChildProcess.spawn(["true"], environment: Self.env, directory: "/no/such/dir")
        }
    }

    @Test func writingToAChildThatStoppedReadingFailsWithoutEndingThisProcess() async throws {
        let input = try InputPipe()
        let child = try await ChildProcess.spawn(["true"], environment: Self.env, stdin: input.childEnd)
        _ = await child.waitUntilExit()
        await #expect(throws: SpawnError.self) { try await input.write([UInt8](repeating: 120, count: 1 << 20)) }
        input.close()
    }

    @Test func linesAreSplitCappedAndTheLastOneKept() {
        let splitter = LineSplitter(maximumLine: 4)
        let got = Mutex<[String]>([])
        let take: (ArraySlice<UInt8>, OutputPipe.LineEnd) -> Void = { line, end in
            got.withLock { $0.append(String(decoding: line, as: UTF8.self) + "/\(end)") }
        }
        splitter.feed(ArraySlice("ab\ncdefgh".utf8), take)
        splitter.feed(ArraySlice("ij\n\nxyz".utf8), take)
        splitter.finish(take)
        #expect(got.withLock { $0 } == ["ab/newline", "cdef/full", "ghij/newline", "/newline", "xyz/endOfFile"])
    }

    @Test func capturedOutputKeepsItsLimitAndSaysItOverflowed() async throws {
        let overflows = Mutex(0)
        let out = CapturedOutput(limit: 1000, onOverflow: { overflows.withLock { $0 += 1 } })
        let child = try await ChildProcess.spawn(["head", "-c", "100000", "/dev/zero"], environment: Self.env, stdout: out.pipe())
        _ = await child.waitUntilExit()
        #expect(await out.waitForEnd(timeout: .seconds(10)))
        #expect(out.bytes.count == 1000)
        #expect(out.overflowed)
        #expect(overflows.withLock { $0 } == 1)
    }
}

/// msgflo-exec's runs on MsgFloProcess, without a broker.
@Suite struct ExecRunTests {
    static let env = ProcessInfo.processInfo.environment

    @Test func outputBeyondTheLimitIsAnErrorAndTheProgramIsKilled() async throws {
        let options = ExecOptions(program: "/bin/sh", arguments: ["-c", "yes"], timeout: .seconds(30), outputLimit: 10_000)
        let started = ContinuousClock.now
        await #expect { _ = try await ExecParticipant.runOnce(options, input: [], environment: Self.env) } throws: { error in
            "\(error)".contains("more than 10000 bytes")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func aProgramThatLeavesAChildHoldingItsOutputIsKilledWholeAtTheTimeout() async throws {
        let options = ExecOptions(program: "/bin/sh", arguments: ["-c", "sleep 60 & echo started"], timeout: .milliseconds(500))
        await #expect { _ = try await ExecParticipant.runOnce(options, input: [], environment: Self.env) } throws: { error in
            "\(error)".contains("did not finish")
        }
    }

    @Test func aBigStderrDoesNotFailARunThatSucceeded() async throws {
        let options = ExecOptions(program: "/bin/sh", arguments: ["-c", "head -c 100000 /dev/zero >&2; echo ok"])
        #expect(try await ExecParticipant.runOnce(options, input: [], environment: Self.env) == Array("ok\n".utf8))
    }

    /// --lines: a program that exits after an answer fails the next request, and the one after starts it again.
    @Test func linesRestartAProgramThatExited() async throws {
        let runner = LinesRunner(ExecOptions(program: "/bin/sh", arguments: ["-c", "read l; echo \"$l\""],
                                             timeout: .seconds(10), lines: true))
        #expect(try await runner.call(Array("1".utf8), environment: Self.env) == Array("1".utf8))
        await #expect(throws: MsgFloError.self) { _ = try await runner.call(Array("2".utf8), environment: Self.env) }
        #expect(try await runner.call(Array("3".utf8), environment: Self.env) == Array("3".utf8))
        runner.restart()
    }
}
