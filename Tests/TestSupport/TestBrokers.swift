import Foundation
import MsgFlo
import MsgFloProcess

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

    /// Test modules with an AMQP virtual host of their own (`Scripts/brokers start` makes `test-<module>`). On AMQP
    /// `fbp` is a work queue: modules running side by side in one `swift test` would take each other's
    /// announcements. Keep this list and TEST_VHOSTS in Scripts/brokers alike.
    public static let isolatedModules: Set<String> = [
        "TransportTests", "ParticipantIntegrationTests", "CoordinatorIntegrationTests", "ToolsTests", "RuntimeTests",
    ]

    /// The URL of the test broker of a kind; on AMQP, in the calling test module's own virtual host (see
    /// ``isolatedModules``). Throws (so the test fails) when no broker is configured.
    public static func url(_ kind: Kind, fileID: String = #fileID) throws -> BrokerURL {
        let name = kind == .amqp ? "MSGFLO_TEST_AMQP_URL" : "MSGFLO_TEST_MQTT_URL"
        guard let text = setting(name) else {
            throw Missing(description: "\(name) is not set and .brokers/env has no value: run Scripts/brokers start (Scripts/test does)")
        }
        var url = try BrokerURL(parsing: text)
        let module = String(fileID.prefix { $0 != "/" })
        if kind == .amqp, isolatedModules.contains(module) { url.vhost = "test-" + module }
        return url
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
    ///
    /// It is started as every child of the project (MsgFloProcess's ``ChildProcess``): an empty signal mask and
    /// default dispositions (a Swift concurrency thread blocks signals, the mask is inherited across exec, and a
    /// broker started with SIGTERM blocked could never be stopped cleanly), its exit awaited by `waitpid` on a thread
    /// of its own (nothing blocks the cooperative pool, no SIGCHLD needed), and no death signal (a restart must not
    /// be cut short). Output goes to a file, not a pipe: a broker the script starts outlives it and would hold a pipe
    /// open forever.
    public static func script(_ args: [String]) async throws {
        let path = packageRoot.appendingPathComponent("Scripts/brokers").path
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-brokers-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let fd = open(log.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Missing(description: "cannot write \(log.path): \(String(cString: strerror(errno)))") }
        let exit: ChildProcess.Exit
        do {
            let child = try await ChildProcess.spawn([path] + args, environment: ProcessInfo.processInfo.environment,
                                                     stdout: fd, stderr: OutputPipe.duplicate(fd), deathSignal: 0)
            exit = await child.waitUntilExit()
        } catch {
            throw Missing(description: "cannot run \(path): \(error)")
        }
        guard exit == .exited(0) else {
            let out = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            let tail = out.split(separator: "\n").suffix(5).joined(separator: " | ")
            throw Missing(description: "Scripts/brokers \(args.joined(separator: " ")) failed (\(exit)): \(tail)")
        }
    }

    /// Makes the broker of a kind go away and come back on the same port (`Scripts/brokers restart KIND`).
    public static func restart(_ kind: Kind) async throws {
        try await script(["restart", kind.rawValue])
    }

    /// A name no other test run uses, for queues and topics.
    public static func unique(_ prefix: String) -> String {
        "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }
}

extension TestBrokers {
    /// A value of `.brokers/cluster/env` (written by `Scripts/brokers cluster start`).
    public static func clusterSetting(_ name: String) -> String? {
        let file = packageRoot.appendingPathComponent(".brokers/cluster/env")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name { return String(parts[1]) }
        }
        return nil
    }

    /// The three-node test cluster's URL (every node's address, node 1 first), with `options` (`a=b&c=d`) added.
    /// Starts the cluster when it does not run (`Scripts/brokers cluster start`, idempotent).
    public static func clusterURL(options: String = "") async throws -> BrokerURL {
        try await script(["cluster", "start"])
        guard let text = clusterSetting("MSGFLO_TEST_CLUSTER_AMQP_URL") else {
            throw Missing(description: ".brokers/cluster/env has no MSGFLO_TEST_CLUSTER_AMQP_URL after cluster start")
        }
        return try BrokerURL(parsing: text + (options.isEmpty ? "" : "?" + options))
    }
}
