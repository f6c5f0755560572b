import Logging
import MsgFlo
import Synchronization
import Testing

/// The one escaping rule for untrusted text in log lines, tables and errors (issue 10, item 3).
@Suite struct SafeTextTests {
    @Test func controlCharactersAreEscaped() {
        #expect(SafeText.escape("a\nb\rc\td") == #"a\nb\rc\td"#)
        #expect(SafeText.escape("x\u{1B}[31mred") == #"x\u001b[31mred"#)
        #expect(SafeText.escape("\u{0}\u{7F}\u{85}\u{9B}") == #"\u0000\u007f\u0085\u009b"#)
        #expect(SafeText.escape("a\u{2028}b\u{2029}c") == #"a\u2028b\u2029c"#)
        #expect(SafeText.escape("abc\u{202E}fed\u{2066}") == #"abc\u202efed\u2066"#)
        #expect(SafeText.escape("\t", keepingTabs: true) == "\t")
    }

    @Test func ordinaryTextIsLeftAsItIs() {
        for text in ["participant added: repeat-1a2b3c4d", "é ü 日本 🙂", #"C:\path\n"#, "a—b…c", ""] {
            #expect(SafeText.escape(text) == text)
        }
    }

    @Test func invalidUTF8BytesAreEscapedByteByByte() {
        #expect(SafeText.escape(bytes: [0x61, 0xFF, 0x62, 0xC3]) == #"a\xffb\xc3"#)
        #expect(SafeText.escape(bytes: Array("é\n".utf8)) == #"é\n"#)
        #expect(SafeText.escape(bytes: [0xE2, 0x80, 0xA8, 0xED, 0xA0, 0x80]) == #"\u2028\xed\xa0\x80"#)
    }

    /// A 200,000-character role made a 428 KB log line: capped, with the count of what was left out.
    @Test func longTextIsCappedWithACount() {
        let role = String(repeating: "é", count: 200_000)
        let shown = SafeText.escape(role, limit: 1024)
        #expect(shown.utf8.count <= 1024)
        #expect(shown.hasPrefix("éé"))
        let kept = shown.prefix { $0 == "é" }.utf8.count
        #expect(shown.hasSuffix("…(\(400_000 - kept) bytes more)"), "\(shown.suffix(40))")
        // Escapes count at their written size.
        let escapes = SafeText.escape(String(repeating: "\u{1B}", count: 1000), limit: 100)
        #expect(escapes.utf8.count <= 100)
        #expect(escapes.hasPrefix(#"\u001b\u001b"#))
        // No cap.
        #expect(SafeText.escape(role, limit: nil) == role)
    }

    /// The escapes are JSON's: escaped compact JSON (what msgflo-dump-message prints) is still JSON, and the same.
    @Test func escapedJSONIsStillTheSameJSON() throws {
        let text = "{\"a\u{85}\":[\"x\u{2028}y\u{202E}z\u{7F}\",\"\\u001b\"]}"
        let escaped = SafeText.escape(text, limit: nil)
        #expect(!escaped.unicodeScalars.contains { SafeText.isEscaped($0) })
        #expect(try JSONValue(parsing: Array(escaped.utf8)) == JSONValue(parsing: Array(text.utf8)))
        // And JSON written by JSONValue never holds those characters raw.
        let written = try JSONValue(parsing: Array(text.utf8)).serialized
        #expect(!written.unicodeScalars.contains { SafeText.isEscaped($0) })
    }

    @Test func escapingTwiceChangesNothing() {
        let samples = ["a\nb\u{1B}c", String(repeating: "x\u{85}", count: 5000), "plain", String(repeating: "🙂", count: 999)]
        for s in samples {
            for limit in [nil, 64, 1024] as [Int?] {
                let once = SafeText.escape(s, limit: limit)
                #expect(SafeText.escape(once, limit: limit) == once)
            }
        }
    }

    // MARK: the log handler

    /// Records what reaches the wrapped handler.
    struct Recorder: LogHandler {
        final class Box: Sendable {
            let events = Mutex<[(String, Logger.Metadata?)]>([])
        }
        let box: Box
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var all = metadata
            all.merge(event.metadata ?? [:]) { _, new in new }
            box.events.withLock { $0.append((event.message.description, all.isEmpty ? nil : all)) }
        }
    }

    @Test func logHandlerEscapesMessagesAndMetadata() {
        let box = Recorder.Box()
        var logger = Logger(label: "test") { _ in SafeLogHandler(Recorder(box: box)) }
        logger[metadataKey: "peer"] = "evil\u{1B}]0;title\u{7}"
        let forged = "x\n2026-11-30T21:00:00+0000 info msgflo: participant added: FORGED (role r, component C)"
        logger.info("participant added: \(forged)", metadata: ["role": .string("r\r\n"), "n": .array(["\u{1B}"])])
        let (message, metadata) = box.events.withLock { $0[0] }
        #expect(!message.contains("\n"))
        #expect(message.contains(#"x\n2026-11-30T21:00:00"#))
        #expect(metadata?["role"] == .string(#"r\r\n"#))
        #expect(metadata?["n"] == .array([.string(#"\u001b"#)]))
        #expect(metadata?["peer"] == .string(#"evil\u001b]0;title\u0007"#))
    }

    @Test func logHandlerCapsLines() {
        let box = Recorder.Box()
        let logger = Logger(label: "test") { _ in SafeLogHandler(Recorder(box: box)) }
        let role = String(repeating: "r", count: 200_000)
        logger.info("participant added: \(role)", metadata: ["role": .string(role)])
        let (message, metadata) = box.events.withLock { $0[0] }
        #expect(message.utf8.count <= SafeText.lineLimit)
        #expect(message.hasSuffix("bytes more)"))
        if case .string(let v)? = metadata?["role"] { #expect(v.utf8.count <= SafeText.defaultLimit) } else {
            Issue.record("role metadata missing")
        }
    }

    @Test func logHandlerEscapesAnErrorsDescription() {
        struct Bad: Error, CustomStringConvertible { var description: String { "line1\nFORGED" } }
        let box = Recorder.Box()
        let logger = Logger(label: "test") { _ in SafeLogHandler(Recorder(box: box)) }
        logger.error("failed", error: Bad())
        let (_, metadata) = box.events.withLock { $0[0] }
        #expect(metadata?["error.message"] == .string(#"line1\nFORGED"#))
    }
}
