import Foundation
import MsgFlo

/// Where the tests find the real brokers that `Scripts/brokers start` runs, and how they restart them.
///
/// The URLs come from the environment (`MSGFLO_TEST_AMQP_URL`, `MSGFLO_TEST_MQTT_URL`, …, exported by
/// `Scripts/test`) or else from `.brokers/env` at the package root (written by `Scripts/brokers start`, so that a
/// plain `swift test` works once the brokers run). A test that needs a broker fails when neither says where one is:
/// it never skips in silence.
public enum TestBrokers {
    public enum Kind: String, Sendable, CaseIterable {
        case amqp, mqtt
    }

    /// The package root, found from this file's path.
    public static let packageRoot: URL = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }()

    /// `../shared` beside the package root, or `MSGFLO_SHARED_DIR`.
    public static var sharedDir: URL {
        if let d = ProcessInfo.processInfo.environment["MSGFLO_SHARED_DIR"], !d.isEmpty {
            return URL(fileURLWithPath: d)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// A variable from the environment, else from `.brokers/env`.
    public static func setting(_ name: String) -> String? {
        if let v = ProcessInfo.processInfo.environment[name], !v.isEmpty { return v }
        let file = packageRoot.appendingPathComponent(".brokers/env")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// The URL of the test broker of a kind. Throws (so the test fails) when no broker is configured.
    public static func url(_ kind: Kind) throws -> BrokerURL {
        let name = kind == .amqp ? "MSGFLO_TEST_AMQP_URL" : "MSGFLO_TEST_MQTT_URL"
        guard let text = setting(name) else {
            throw Missing(description: "\(name) is not set and .brokers/env has no value: run Scripts/brokers start (Scripts/test does)")
        }
        return try BrokerURL(parsing: text)
    }

    /// The TLS URL (amqps/mqtts) and CA file of a kind, when the brokers script set one up.
    public static func tlsURL(_ kind: Kind) throws -> BrokerURL {
        let name = kind == .amqp ? "MSGFLO_TEST_AMQPS_URL" : "MSGFLO_TEST_MQTTS_URL"
        guard let text = setting(name) else {
            throw Missing(description: "\(name) is not set: run Scripts/brokers start (Scripts/test does)")
        }
        return try BrokerURL(parsing: text)
    }

    /// Runs `Scripts/brokers ARGS…` and waits for it; throws when it fails.
    public static func script(_ args: [String]) throws {
        let p = Process()
        p.executableURL = packageRoot.appendingPathComponent("Scripts/brokers")
        p.arguments = args
        p.standardInput = FileHandle.nullDevice
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw Missing(description: "Scripts/brokers \(args.joined(separator: " ")) failed: \(String(decoding: out, as: UTF8.self))")
        }
    }

    /// Makes the broker of a kind go away and come back on the same port (`Scripts/brokers restart KIND`).
    /// Blocking: call it from a detached task or a test body, never from a transport's own thread.
    public static func restart(_ kind: Kind) throws {
        try script(["restart", kind.rawValue])
    }

    /// A name no other test run uses, for queues and topics.
    public static func unique(_ prefix: String) -> String {
        "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }
}
