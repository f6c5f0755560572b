import CMsgFloSpawn
import Foundation
import Synchronization

/// A pipe for a child's stdout or stderr. ``make(name:chunk:end:)`` returns the write end for
/// ``ChildProcess/spawn(_:environment:directory:stdin:stdout:stderr:deathSignal:onExit:)``; the read end is read by
/// a thread of its own until the end of the pipe (when the child and whatever it started have closed it), never on
/// Swift's cooperative pool, and closed by that thread. (Not a dispatch read source, FileHandle's
/// readabilityHandler: its descriptor was closed when the handle was released, possibly before the source's
/// cancellation had finished, which crashed libdispatch's event loop now and then when children exited; and it once
/// stopped early, cutting a tool's 190 KB of JSON.)
package enum OutputPipe {
    /// Each chunk read goes to `chunk`, in order; `end` runs once after the last.
    package static func make(name: String, chunk: @escaping @Sendable (ArraySlice<UInt8>) -> Void,
                             end: @escaping @Sendable () -> Void = {}) throws(SpawnError) -> Int32 {
        let (readEnd, writeEnd) = try pipe()
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }  // the end (or an error: nothing more will come)
                chunk(buffer[0..<n])
            }
            close(readEnd)
            end()
        }
        thread.name = name
        thread.start()
        return writeEnd
    }

    /// How a line handed on by ``lines(name:maximumLine:line:end:)`` ended.
    package enum LineEnd: Sendable {
        /// A line feed (not part of the line).
        case newline
        /// `maximumLine` bytes without a line feed: the rest follows as the next line.
        case full
        /// The end of the pipe came before a line feed.
        case endOfFile
    }

    /// The output split into lines: a line (without its line feed) at most `maximumLine` bytes long, so that a
    /// child writing without line breaks costs a line per `maximumLine` bytes, not its reader's memory.
    package static func lines(name: String, maximumLine: Int,
                              line: @escaping @Sendable (ArraySlice<UInt8>, LineEnd) -> Void,
                              end: @escaping @Sendable () -> Void = {}) throws(SpawnError) -> Int32 {
        let splitter = LineSplitter(maximumLine: maximumLine)
        return try make(name: name, chunk: { splitter.feed($0, line) }, end: {
            splitter.finish(line)
            end()
        })
    }

    /// A pipe whose ends are both close-on-exec: (read end, write end).
    package static func pipe() throws(SpawnError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = fds.withUnsafeMutableBufferPointer { cmsgflo_pipe($0.baseAddress) }
        guard rc == 0 else { throw SpawnError("cannot make a pipe: \(String(cString: strerror(-rc)))") }
        return (fds[0], fds[1])
    }

    /// A copy of `fd` (as the tool's own stdout, to hand to a child) that no other child inherits.
    package static func duplicate(_ fd: Int32) throws(SpawnError) -> Int32 {
        let rc = cmsgflo_dup(fd)
        guard rc >= 0 else { throw SpawnError("cannot duplicate descriptor \(fd): \(String(cString: strerror(-rc)))") }
        return rc
    }
}

/// Bytes into lines (used by the reader thread of one pipe only; the lock is for the compiler).
package final class LineSplitter: Sendable {
    private let pending = Mutex<[UInt8]>([])
    private let maximumLine: Int

    package init(maximumLine: Int) { self.maximumLine = max(1, maximumLine) }

    package func feed(_ bytes: ArraySlice<UInt8>, _ line: (ArraySlice<UInt8>, OutputPipe.LineEnd) -> Void) {
        pending.withLock { p in
            p.append(contentsOf: bytes)
            var start = 0
            while let nl = p[start...].firstIndex(of: 10) {
                if nl - start > maximumLine {
                    line(p[start..<(start + maximumLine)], .full)
                    start += maximumLine
                    continue
                }
                line(p[start..<nl], .newline)
                start = nl + 1
            }
            while p.count - start >= maximumLine {
                line(p[start..<(start + maximumLine)], .full)
                start += maximumLine
            }
            p.removeFirst(start)
        }
    }

    package func finish(_ line: (ArraySlice<UInt8>, OutputPipe.LineEnd) -> Void) {
        pending.withLock { p in
            if !p.isEmpty { line(p[...], .endOfFile) }
            p = []
        }
    }
}

/// A child's stdin: ``childEnd`` goes to the spawn (which closes it); what ``write(_:)`` writes is written by a
/// thread of its own (a child that does not read would otherwise block the writer), with SIGPIPE blocked there: a
/// child that exited or closed its stdin makes the write fail with EPIPE, never ends this process.
package final class InputPipe: Sendable {
    package let childEnd: Int32
    private let writeEnd: Int32
    private let thread: BlockingThread

    package init(name: String = "msgflo-stdin") throws(SpawnError) {
        (childEnd, writeEnd) = try OutputPipe.pipe()
        thread = BlockingThread(name: name)
    }

    /// Writes all of `bytes` (after what was written before); throws when the child stopped reading.
    package func write(_ bytes: [UInt8]) async throws(SpawnError) {
        let fd = writeEnd
        let failed = await thread.run { () -> Int32 in Self.writeAll(fd, bytes) }
        if failed != 0 { throw SpawnError("cannot write to the program: \(String(cString: strerror(failed)))") }
    }

    /// Writes `bytes` and then closes the pipe, without waiting (a failed write is the child's business: it did not
    /// want its input).
    package func writeAndClose(_ bytes: [UInt8]) {
        let fd = writeEnd
        thread.submit { _ = Self.writeAll(fd, bytes) }
        close()
    }

    /// Closes the pipe (the child reads the end of its input) once what was written before is written; ends the
    /// thread. Call it once.
    package func close() {
        let fd = writeEnd
        thread.submit { _ = Foundation.close(fd) }
        thread.finish()
    }

    /// 0, or the errno of the write that failed.
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return 0
    }
}

/// A child's output kept in memory (up to `limit` bytes; past it the rest is read and dropped and ``overflowed``
/// says so, and `onOverflow` runs once), with waits for its end and for what it holds, woken by each chunk rather
/// than polling.
package final class CapturedOutput: Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var overflowed = false
        var closed = false
        var waiters: [UInt64: (condition: @Sendable ([UInt8], Bool) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = [:]
        var nextWaiter: UInt64 = 0
    }
    private let state = Mutex(State())
    private let limit: Int
    private let onChunk: (@Sendable (ArraySlice<UInt8>) -> Void)?
    private let onOverflow: (@Sendable () -> Void)?

    /// `onChunk` sees each chunk before it is kept (a test measures what came on another stream before it).
    package init(limit: Int = .max, onChunk: (@Sendable (ArraySlice<UInt8>) -> Void)? = nil,
                 onOverflow: (@Sendable () -> Void)? = nil) {
        self.limit = limit
        self.onChunk = onChunk
        self.onOverflow = onOverflow
    }

    /// A pipe into this capture: its write end, for the child.
    package func pipe(name: String = "msgflo-output") throws(SpawnError) -> Int32 {
        try OutputPipe.make(name: name, chunk: { [self] in append($0) }, end: { [self] in finish() })
    }

    package var bytes: [UInt8] { state.withLock { $0.bytes } }
    package var text: String { String(decoding: bytes, as: UTF8.self) }
    package var overflowed: Bool { state.withLock { $0.overflowed } }
    /// The pipe reached its end.
    package var isClosed: Bool { state.withLock { $0.closed } }

    private func append(_ chunk: ArraySlice<UInt8>) {
        onChunk?(chunk)
        let (ready, overflowNow) = state.withLock { s -> ([CheckedContinuation<Bool, Never>], Bool) in
            let room = limit - s.bytes.count
            var overflowNow = false
            if chunk.count <= room {
                s.bytes.append(contentsOf: chunk)
            } else {
                s.bytes.append(contentsOf: chunk.prefix(max(0, room)))
                overflowNow = !s.overflowed
                s.overflowed = true
            }
            return (Self.take(&s), overflowNow)
        }
        for c in ready { c.resume(returning: true) }
        if overflowNow { onOverflow?() }
    }

    /// For a capture no pipe feeds: ends it now.
    package func markClosed() { finish() }

    private func finish() {
        let ready = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            return Self.take(&s)
        }
        for c in ready { c.resume(returning: true) }
    }

    /// Removes the waiters whose condition now holds; once closed, every waiter (the condition may never hold).
    private static func take(_ s: inout State) -> [CheckedContinuation<Bool, Never>] {
        var out: [CheckedContinuation<Bool, Never>] = []
        for (id, w) in s.waiters where s.closed || w.condition(s.bytes, s.closed) {
            out.append(w.continuation)
            s.waiters.removeValue(forKey: id)
        }
        return out
    }

    /// Waits until `condition(bytes, closed)` holds, or the pipe is closed, or `timeout` has passed, or the task is
    /// cancelled; returns whether the condition holds.
    package func wait(timeout: Duration, until condition: @escaping @Sendable ([UInt8], Bool) -> Bool) async -> Bool {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        let check: @Sendable () -> Bool = { [self] in state.withLock { condition($0.bytes, $0.closed) } }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                        let now = self.state.withLock { s -> Bool in
                            if s.closed || condition(s.bytes, s.closed) || Task.isCancelled { return true }
                            s.waiters[id] = (condition, c)
                            return false
                        }
                        if now { c.resume(returning: true) }
                    }
                } onCancel: {
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume(returning: false)
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return check()
    }

    /// Waits until the pipe reached its end (at most `timeout`); whether it did.
    package func waitForEnd(timeout: Duration) async -> Bool {
        await wait(timeout: timeout) { _, closed in closed }
    }
}
