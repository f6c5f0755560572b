// swift-tools-version: 6.2
import PackageDescription

/// Every Swift target: Swift 6 (strict concurrency), `any` spelled out for existentials, and every warning an error
/// except deprecations (a dependency's new release may deprecate what we call: that must not break a build). These
/// settings apply to this package's own targets only, never to a package that depends on it.
let swift6: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .treatAllWarnings(as: .error),
    .treatWarning("DeprecatedDeclaration", as: .warning),
]
/// The C shims: the usual warnings on, and errors.
let strictC: [CSetting] = [.enableWarning("all"), .enableWarning("extra"), .treatAllWarnings(as: .error)]

let package = Package(
    name: "MsgFlo",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MsgFlo", targets: ["MsgFlo"]),
        .library(name: "FBP", targets: ["FBP"]),
        .library(name: "MsgFloTransports", targets: ["MsgFloTransports"]),
        .library(name: "MsgFloParticipant", targets: ["MsgFloParticipant"]),
        .library(name: "MsgFloParticipantMain", targets: ["MsgFloParticipantMain"]),
        .executable(name: "msgflo-participant", targets: ["msgflo-participant"]),
        .executable(name: "msgflo-setup", targets: ["msgflo-setup"]),
        .executable(name: "msgflo-send-message", targets: ["msgflo-send-message"]),
        .executable(name: "msgflo-call", targets: ["msgflo-call"]),
        .executable(name: "msgflo-queues", targets: ["msgflo-queues"]),
        .executable(name: "msgflo-exec", targets: ["msgflo-exec"]),
        .library(name: "MsgFloExec", targets: ["MsgFloExec"]),
        .library(name: "MsgFloTesting", targets: ["MsgFloTesting"]),
        .executable(name: "msgflo-dump-message", targets: ["msgflo-dump-message"]),
        .executable(name: "msgflo-register", targets: ["msgflo-register"]),
        .executable(name: "msgflo-procfile", targets: ["msgflo-procfile"]),
        .executable(name: "msgflo-register-foreign", targets: ["msgflo-register-foreign"]),
        .executable(name: "msgflo-chaos", targets: ["msgflo-chaos"]),
        .executable(name: "msgflo-bench-runtime", targets: ["msgflo-bench-runtime"]),
        .executable(name: "msgflo", targets: ["msgflo"]),
        .executable(name: "msgflo-graph", targets: ["msgflo-graph"]),
        .executable(name: "msgflo-latency", targets: ["msgflo-latency"]),
        .executable(name: "msgflo-bench-relay", targets: ["msgflo-bench-relay"]),
        .executable(name: "msgflo-bench-failover", targets: ["msgflo-bench-failover"]),
        .executable(name: "msgflo-bench-coordinator", targets: ["msgflo-bench-coordinator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C bridges
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .target(name: "CRabbitMQ", cSettings: strictC, linkerSettings: [.linkedLibrary("rabbitmq")]),
        // fork/exec for every child process, with PR_SET_PDEATHSIG set in the child (posix_spawn cannot).
        .target(name: "CMsgFloSpawn", cSettings: strictC),
        // The eventfd that wakes a transport's owner thread (MsgFloIOThread).
        .target(name: "CMsgFloIO", cSettings: strictC),

        // Pure Swift layers
        .target(name: "MsgFlo", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: swift6),
        // Graphs (.fbp and JSON) on MsgFlo's JSONValue, the project's one JSON value.
        .target(name: "FBP", dependencies: ["MsgFlo"], swiftSettings: swift6),
        // The one way to start and supervise a child process (daemon, tools, msgflo-exec, benchmarks, tests; not a
        // product): docs/processes.md.
        .target(name: "MsgFloProcess", dependencies: ["MsgFlo", "CMsgFloSpawn"], swiftSettings: swift6),

        // Transports, on one owner-thread module (thread, eventfd wake-up, executor, backoff, deadlines; not a product)
        .target(name: "MsgFloIOThread", dependencies: ["CMsgFloIO"], swiftSettings: swift6),
        .target(name: "MsgFloAMQP", dependencies: ["MsgFlo", "MsgFloIOThread", "CRabbitMQ", .product(name: "Logging", package: "swift-log")], swiftSettings: swift6,
                // The C shim's TLS helper calls OpenSSL directly (librabbitmq links it too).
                linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "MsgFloMQTT", dependencies: ["MsgFlo", "MsgFloIOThread", "CMosquitto", .product(name: "Logging", package: "swift-log")], swiftSettings: swift6),
        .target(name: "MsgFloTransports", dependencies: [
            "MsgFlo", "MsgFloAMQP", "MsgFloMQTT", .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swift6),

        // Observing a process: /metrics (Prometheus text), /healthz and /readyz on a small Hummingbird server, shared
        // by participants (--metrics-port) and the daemon's runtime server.
        .target(name: "MsgFloObserve", dependencies: [
            "MsgFlo",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: swift6),

        // SDK and coordinator
        // A participant author's test kit: runs a participant on the in-memory transport, feeds it, collects what it
        // sends, dead-letters and logs.
        .target(name: "MsgFloTesting", dependencies: [
            "MsgFlo", "MsgFloParticipant", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),
        .target(name: "MsgFloParticipant", dependencies: [
            "MsgFlo", "MsgFloObserve",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swift6),
        .target(name: "MsgFloCoordinator", dependencies: [
            "MsgFlo", "FBP", "MsgFloProcess",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swift6),

        // The coordinator as a live FBP runtime (Flowhub's WebSocket protocol): HTTP and WebSocket on Hummingbird, kept
        // out of MsgFloCoordinator so that the coordinator library stays free of HTTP.
        .target(name: "MsgFloRuntime", dependencies: [
            "MsgFlo", "FBP", "MsgFloCoordinator", "MsgFloObserve",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: swift6),

        // One-line error reporting shared by every executable (ArgumentParser and MsgFlo's SafeText: no Foundation,
        // so msgflo-graph stays small).
        .target(name: "MsgFloCLI", dependencies: ["MsgFlo", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                                .product(name: "Logging", package: "swift-log")],
                swiftSettings: swift6),
        // The command-line tools: their logic lives in MsgFloTools (testable in-process), the executables only start it.
        .target(name: "MsgFloTools", dependencies: [
            "MsgFlo", "FBP", "MsgFloCoordinator", "MsgFloCLI", "MsgFloProcess",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            // msgflo-queues reads RabbitMQ's management API (plain HTTP/1.1; NIO is already in the graph).
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: swift6),

        // Executables
        .executableTarget(name: "msgflo-setup", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-send-message", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-call", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-queues", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .target(name: "MsgFloExec", dependencies: ["MsgFlo", "MsgFloParticipant", "MsgFloProcess"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-exec", dependencies: ["MsgFlo", "MsgFloCLI", "MsgFloExec", "MsgFloParticipantMain"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-dump-message", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-register", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-procfile", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-chaos", dependencies: ["MsgFlo", "MsgFloCLI", "MsgFloMQTT", "MsgFloTransports", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: swift6),
        .executableTarget(name: "msgflo-register-foreign", dependencies: ["MsgFloTools", "MsgFloTransports"], swiftSettings: swift6),
        .executableTarget(name: "msgflo-bench-relay", dependencies: ["MsgFlo", "MsgFloCLI", "MsgFloTransports", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: swift6),
        .executableTarget(name: "msgflo-bench-failover", dependencies: ["MsgFlo", "MsgFloCLI", "MsgFloTransports", "MsgFloProcess",
                                                                  .product(name: "Logging", package: "swift-log"), .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: swift6),
        .executableTarget(name: "msgflo", dependencies: [
            "MsgFlo", "MsgFloCoordinator", "MsgFloTransports", "MsgFloCLI", "MsgFloRuntime", "MsgFloObserve",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),
        .executableTarget(name: "msgflo-bench-coordinator", dependencies: [
            "MsgFlo", "MsgFloCLI", "MsgFloCoordinator", "MsgFloTransports", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: swift6),
        .executableTarget(name: "msgflo-bench-runtime", dependencies: [
            "MsgFlo", "MsgFloCLI", "MsgFloTransports", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: swift6),
        .executableTarget(name: "msgflo-graph", dependencies: ["FBP", "MsgFlo", "MsgFloCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: swift6),

        // The command line every participant gets (role, broker, IIPs, prefetch, discovery period, signals)
        .target(name: "MsgFloParticipantMain", dependencies: [
            "MsgFlo", "MsgFloCLI", "MsgFloParticipant", "MsgFloTransports",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swift6),

        // Example participants and their one command-line executable
        .target(name: "ExampleParticipants", dependencies: ["MsgFlo", "MsgFloParticipant"],
                path: "participants/Sources/ExampleParticipants", swiftSettings: swift6),
        .executableTarget(name: "msgflo-participant", dependencies: ["ExampleParticipants", "MsgFloParticipantMain"],
                          path: "participants/Sources/msgflo-participant", swiftSettings: swift6),
        .executableTarget(name: "msgflo-latency", dependencies: ["MsgFlo", "MsgFloCLI", "MsgFloParticipant", "MsgFloTransports",
                                                                 .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                                                 .product(name: "Logging", package: "swift-log")],
                          path: "participants/Sources/msgflo-latency", swiftSettings: swift6),

        // Tests
        .target(name: "TestSupport", dependencies: ["MsgFlo", "MsgFloProcess", .product(name: "Logging", package: "swift-log")], path: "Tests/TestSupport", swiftSettings: swift6),
        .testTarget(name: "FBPTests", dependencies: ["FBP", "MsgFlo", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "MsgFloTests", dependencies: ["MsgFlo", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "CoordinatorTests", dependencies: ["MsgFlo", "MsgFloCoordinator", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "ToolsTests", dependencies: ["MsgFlo", "MsgFloCoordinator", "MsgFloTools", "MsgFloTransports", "TestSupport", .product(name: "Logging", package: "swift-log"), .product(name: "ArgumentParser", package: "swift-argument-parser"),
            "msgflo-setup", "msgflo-send-message", "msgflo-call", "msgflo-queues", "msgflo-dump-message", "msgflo-register", "msgflo-procfile", "msgflo-participant",
            "msgflo-register-foreign", "msgflo-graph", "msgflo"], swiftSettings: swift6),
        .testTarget(name: "CoordinatorIntegrationTests", dependencies: [
            "MsgFlo", "MsgFloCoordinator", "MsgFloTransports", "TestSupport", "msgflo", "msgflo-participant",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),
        .testTarget(name: "ParticipantTests", dependencies: [
            "MsgFlo", "MsgFloParticipant", "MsgFloTesting", "ExampleParticipants", "TestSupport", "MsgFloObserve",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ], swiftSettings: swift6),
        .testTarget(name: "ParticipantIntegrationTests", dependencies: [
            "MsgFlo", "MsgFloParticipant", "MsgFloTransports", "ExampleParticipants", "TestSupport", "msgflo-participant",
            "MsgFloExec", "msgflo-call", "msgflo-exec",
        ], swiftSettings: swift6),
        .testTarget(name: "RuntimeTests", dependencies: [
            "MsgFlo", "TestSupport", "msgflo", "msgflo-participant",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: swift6),
        .testTarget(name: "ProcessTests", dependencies: ["MsgFlo", "MsgFloProcess", "MsgFloExec", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "IOThreadTests", dependencies: ["MsgFloIOThread"], swiftSettings: swift6),
        .testTarget(name: "TransportTests", dependencies: [
            "MsgFlo", "MsgFloIOThread", "MsgFloAMQP", "MsgFloMQTT", "MsgFloTransports", "MsgFloTesting", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swift6),
    ]
)
