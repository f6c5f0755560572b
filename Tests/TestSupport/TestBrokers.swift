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

    /// Runs `Scripts/brokers ARGS…` and waits for it; throws when it fails. Blocking (it waits with `waitpid`):
    /// call it from a detached task or a thread of its own.
    ///
    /// It spawns with posix_spawn rather than Foundation's `Process`: the child gets an empty signal mask (a Swift
    /// concurrency thread blocks signals, the mask is inherited across exec, and a broker started with SIGTERM
    /// blocked could never be stopped cleanly), and waiting needs no SIGCHLD delivery (Foundation's wait does, and
    /// hangs on a thread that does not block it). Output goes to a file, not a pipe: a broker the script starts
    /// outlives it and would hold a pipe open forever.
    public static func script(_ args: [String]) throws {
        let path = packageRoot.appendingPathComponent("Scripts/brokers").path
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("msgflo-brokers-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw Missing(description: "cannot run \(path): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            let out = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            let tail = out.split(separator: "\n").suffix(5).joined(separator: " | ")
            throw Missing(description: "Scripts/brokers \(args.joined(separator: " ")) failed (\(exited ? "exit \(code)" : "signal \(status & 0x7f)")): \(tail)")
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

extension TestBrokers {
    /// `Scripts/brokers ARGS…` on a thread of its own (it blocks in waitpid, which must not hold one of Swift's
    /// cooperative threads for the minute a cluster takes to start).
    public static func scriptOffPool(_ args: [String]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do {
                    try script(args)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "test.brokers-script"
            thread.start()
        }
    }

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
        try await scriptOffPool(["cluster", "start"])
        guard let text = clusterSetting("MSGFLO_TEST_CLUSTER_AMQP_URL") else {
            throw Missing(description: ".brokers/cluster/env has no MSGFLO_TEST_CLUSTER_AMQP_URL after cluster start")
        }
        return try BrokerURL(parsing: text + (options.isEmpty ? "" : "?" + options))
    }
}
