import Foundation
import Logging
import MsgFlo
import Testing

/// `--log-format json`: one JSON object per line, every field a reader needs, and the escaping of SafeLogHandler
/// still in force (a hostile name can neither break the JSON nor forge a line).
@Suite struct JSONLogHandlerTests {
    /// Logs through `LogFormat.json`'s handler chain into a pipe and returns the lines written.
    func lines(_ body: (Logger) -> Void) throws -> [String] {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let write = fds[1]
        let handler: SafeLogHandler = {
            var h = SafeLogHandler(LineLogHandler(label: "test.json", format: .json, fileDescriptor: write))
            h.logLevel = .debug
            return h
        }()
        let logger = Logger(label: "test.json", factory: { _ in handler })
        body(logger)
        close(fds[1])
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        close(fds[0])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasSuffix("\n"))
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func everyLineIsOneJSONObjectWithTheFields() throws {
        let forged = "x\n{\"level\":\"critical\",\"message\":\"FORGED\"}\u{1B}[2J\u{2028}"
        let out = try lines { logger in
            logger.info("participant added", metadata: ["participant": .string(forged), "role": "r", "n": .array(["1", .dictionary(["k": "v"])])])
            logger.warning("participant lost: \(forged)")
            logger.debug("plain")
            logger.error("with an error", error: CocoaError(.fileNoSuchFile))
        }
        #expect(out.count == 4, "\(out)")
        var objects: [[String: Any]] = []
        for line in out {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            objects.append(o)
            #expect(o["label"] as? String == "test.json")
            let time = try #require(o["time"] as? String)
            #expect(time.count == 24 && time.hasSuffix("Z") && time.dropFirst(10).hasPrefix("T"), "\(time)")
        }
        #expect(objects.map { $0["level"] as? String } == ["info", "warning", "debug", "error"])
        let meta = try #require(objects[0]["metadata"] as? [String: Any])
        #expect(meta["role"] as? String == "r")
        // SafeText's escapes survive as text: no raw control character, no second object from a forged name.
        let participant = try #require(meta["participant"] as? String)
        #expect(participant.contains("\\n") && participant.contains("\\u001b"), "\(participant)")
        #expect(!participant.unicodeScalars.contains { $0.value < 0x20 })
        #expect((meta["n"] as? [Any])?.count == 2)
        #expect((objects[1]["message"] as? String)?.hasPrefix("participant lost: x\\n") == true)
        #expect(objects[2]["metadata"] == nil)
        #expect((objects[3]["metadata"] as? [String: Any])?["error.type"] != nil)
    }

    @Test func linesAreJSONWhateverTheStrings() throws {
        let hostile = "a\"b\\c\n\u{0}\u{7f}\u{2029}\u{1B}[31mé🙂"
        let line = LineLogHandler.jsonLine(time: "t", level: .info, label: hostile, message: hostile,
                                           metadata: [hostile: .array([.string(hostile), .dictionary([hostile: "v"])])])
        #expect(line.hasSuffix("}\n") && line.dropLast().allSatisfy { $0 != "\n" })
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x2029 || $0.value == 0x7f })
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(o["label"] as? String == hostile && o["message"] as? String == hostile)
        #expect(((o["metadata"] as? [String: Any])?[hostile] as? [Any])?.first as? String == hostile)
    }

    @Test func formatsResolveFromOptionThenEnvironment() {
        #expect(LogFormat.resolve(nil, environment: [:]) == .text)
        #expect(LogFormat.resolve(nil, environment: ["MSGFLO_LOG_FORMAT": "JSON"]) == .json)
        #expect(LogFormat.resolve("text", environment: ["MSGFLO_LOG_FORMAT": "json"]) == .text)
        #expect(LogFormat.resolve("xml", environment: [:]) == nil)
        #expect(LogFormat.resolve(nil, environment: ["MSGFLO_LOG_FORMAT": "yaml"]) == nil)
    }
}
