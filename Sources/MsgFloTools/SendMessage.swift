import Foundation
import MsgFlo

/// `msgflo-send-message`: sends JSON data into a queue (AMQP: default exchange, routing key = queue; MQTT: topic).
public enum SendMessage {
    public enum Source: Sendable, Equatable {
        case json(String)
        case file(String)
        case stdin
    }

    /// The bytes to send, checked to be JSON. Text from a file or stdin loses its surrounding whitespace (a final
    /// newline), nothing else: the bytes are sent as written, not re-encoded.
    public static func payload(from source: Source, readStdin: () -> Data = { FileHandle.standardInput.readDataToEndOfFile() }) throws -> Message {
        let text: String
        switch source {
        case .json(let s):
            text = s
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ToolFailure("cannot read file '\(path)': \(FileAccess.reason(path))")
            }
            text = String(decoding: data, as: UTF8.self)
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

    /// Sends `message` `count` times to `queue`.
    public static func send(_ message: Message, to queue: String, count: Int, over transport: any Transport) async throws {
        for _ in 0..<count {
            try await transport.send(toInport: queue, message)
        }
    }
}

enum FileAccess {
    /// Why a file cannot be read, in a few words.
    static func reason(_ path: String) -> String {
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) { return "no such file" }
        if isDir.boolValue { return "it is a directory" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return "unreadable"
    }

    static func read(_ path: String, what: String = "file") throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ToolFailure("cannot read \(what) '\(path)': \(reason(path))")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ToolFailure("cannot read \(what) '\(path)': not UTF-8 text")
        }
        return text
    }
}
