import Foundation
import MsgFlo
import MsgFloCoordinator

/// `msgflo-send-message`: sends JSON data into a queue (AMQP: default exchange, routing key = queue; MQTT: topic).
package enum SendMessage {
    package enum Source: Sendable, Equatable {
        case json(String)
        case file(String)
        case stdin

        /// `--json`, else `--file`, else standard input; with nothing piped in, says what is missing (`what`: the
        /// message or the request) rather than wait for typing.
        package static func given(json: String?, file: String?, what: String) throws -> Source {
            if let json { return .json(json) }
            if let file { return .file(file) }
            guard isatty(STDIN_FILENO) == 0 else {
                throw ToolFailure("Missing \(what) payload (--json DATA, --file PATH, or data on stdin)")
            }
            return .stdin
        }
    }

    /// The bytes to send, checked to be JSON. Text from a file or stdin loses its surrounding whitespace (a final
    /// newline), nothing else: the bytes are sent as written, not re-encoded.
    package static func payload(from source: Source, readStdin: () -> Data = { FileHandle.standardInput.readDataToEndOfFile() }) throws -> Message {
        let text: String
        switch source {
        case .json(let s):
            text = s
        case .file(let path):
            do { text = String(decoding: try TextFile.bytes(path, what: "file"), as: UTF8.self) } catch {
                throw ToolFailure(error.message)
            }
        case .stdin:
            text = String(decoding: readStdin(), as: UTF8.self)
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            throw ToolFailure("Missing message payload (--json, --file or data on stdin)")
        }
        do {
            _ = try JSONValue(parsing: trimmed)
        } catch {
            throw ToolFailure("Invalid JSON: \(error.message)")
        }
        return Message(text: trimmed)
    }

    /// Sends `message` `count` times to `queue`, each one confirmed by the broker. On AMQP each is published
    /// mandatory: when no queue takes it, this fails naming the queue, with the near matches that exist
    /// ("no queue 'shout.in' on …; did you mean shout.IN?").
    package static func send(_ message: Message, to queue: String, count: Int, over transport: any Transport) async throws {
        for _ in 0..<count {
            do {
                try await transport.sendRouted(toInport: queue, message)
            } catch let error as MsgFloError where error.code == .notFound {
                let near = await NearMatches.existing(queue, on: transport)
                throw ToolFailure("no queue '\(queue)' on \(transport.broker): the message went nowhere"
                                  + NearMatches.suffix(near))
            }
        }
    }
}

/// Queues that exist on an AMQP broker and whose names are close to one that does not: for "did you mean …?".
///
/// Candidates come from two places: the name itself (msgflo's `role.PORT` convention with the port upper-cased,
/// and the whole name in upper or lower case: the usual typo is the case of the port), and the inport queues a
/// running `msgflo` daemon knows (asked over `msgflo.status` for one second; none when no daemon runs). Each
/// candidate is then checked with a passive declare, which creates nothing: a suggestion always names a queue that
/// exists at that moment.
package enum NearMatches {
    package static func existing(_ name: String, on transport: any Transport,
                                daemonTimeout: Duration = .seconds(1)) async -> [String] {
        guard transport.capabilities.contains(.queueDepth) else { return [] }
        var candidates = variants(of: name)
        if let status = try? await StatusClient.ask(transport, timeout: daemonTimeout) {
            let known = status.rows.flatMap { $0.queueDepths.keys }
            candidates += rank(name, among: known)
        }
        var out: [String] = []
        for c in candidates where c != name && !out.contains(c) && out.count < 3 {
            guard WireName.isValid(c, .amqp) else { continue }
            if (try? await transport.queueDepth(c)) != nil { out.append(c) }
        }
        return out
    }

    /// "; did you mean a or b?", or "" without candidates.
    package static func suffix(_ near: [String]) -> String {
        guard !near.isEmpty else { return "" }
        return "; did you mean " + near.joined(separator: " or ") + "?"
    }

    /// Case variants of `name`, the msgflo convention first.
    package static func variants(of name: String) -> [String] {
        var out: [String] = []
        if let dot = name.lastIndex(of: ".") {
            out.append(String(name[..<dot]) + "." + name[name.index(after: dot)...].uppercased())
            out.append(String(name[..<dot]).lowercased() + "." + name[name.index(after: dot)...].uppercased())
        }
        out.append(name.uppercased())
        out.append(name.lowercased())
        return out
    }

    /// Names of `known` close to `name` (same letters but for case, or a few edits), closest first.
    package static func rank(_ name: String, among known: [String]) -> [String] {
        let target = Array(name.lowercased().unicodeScalars)
        guard target.count <= 255 else { return [] }
        let limit = max(2, target.count / 4)
        return known.compactMap { k -> (String, Int)? in
            let d = distance(target, Array(k.lowercased().unicodeScalars), limit: limit)
            return d <= limit ? (k, d) : nil
        }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map(\.0)
    }

    /// Levenshtein distance, or `limit + 1` when it is larger (or the lengths differ by more).
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar], limit: Int) -> Int {
        if abs(a.count - b.count) > limit || b.count > 255 { return limit + 1 }
        var prev = Array(0...b.count)
        var cur = prev
        for i in 1...max(1, a.count) where !a.isEmpty {
            cur[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return a.isEmpty ? b.count : prev[b.count]
    }
}

enum FileAccess {
    /// The file's text (UTF-8), as ``TextFile`` reads it; failures are the tool's one line.
    static func read(_ path: String, what: String = "file") throws -> String {
        do { return try TextFile.read(path, what: what) } catch { throw ToolFailure(error.message) }
    }
}
