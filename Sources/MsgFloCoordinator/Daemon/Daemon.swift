import Foundation
import Logging
import MsgFlo
import ServiceLifecycle

/// The `msgflo` daemon's settings, as the command line gives them.
public struct DaemonConfiguration: Sendable {
    public var broker: BrokerURL
    public var graphPath: String?
    /// `--library`; msgflo's default is `package.json`, which may be absent (then no participant is started).
    public var libraryPath = "package.json"
    public var libraryGiven = false
    public var componentDirectory = "participants"
    public var options = CoordinatorOptions()

    public init(broker: BrokerURL) { self.broker = broker }

    /// Loads the graph and the library: errors here are the user's (a bad file) and stop the start with one line.
    public func load(logger: Logger) throws(MsgFloError) -> (DesiredGraph, CoordinatorOptions) {
        var graph = DesiredGraph()
        if let graphPath {
            graph = try GraphFile.load(graphPath)
            // The daemon may well start before its participants exist, but not without a single node to keep.
            if graph.roles.isEmpty { logger.warning("graph \(graphPath) has no processes: nothing to wire") }
        }
        var options = self.options
        if libraryGiven || FileManager.default.fileExists(atPath: libraryPath) {
            let library = try ComponentLibrary.load(path: libraryPath, componentDirectory: componentDirectory)
            logger.info("component library \(libraryPath): \(library.names.count) components")
            options.library = library
        } else {
            logger.info("no component library (\(libraryPath) not found): starting no participants")
        }
        return (graph, options)
    }
}

/// The coordinator as a long-lived service: connects (retrying while the broker is away), runs until graceful
/// shutdown (SIGTERM, SIGINT through `ServiceGroup`), then stops the children and closes the connection.
public struct CoordinatorService: Service {
    public let coordinator: Coordinator
    public let transport: any Transport
    let logger: Logger

    public init(coordinator: Coordinator, logger: Logger) {
        self.coordinator = coordinator
        self.transport = coordinator.transport
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var delay = Duration.milliseconds(500)
            while !Task.isCancelled {
                do {
                    try await transport.connect()
                    break
                } catch {
                    logger.error("cannot connect to \(transport.broker): \(error); trying again in \(delay)")
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(30))
                }
            }
            while !Task.isCancelled {
                do {
                    try await coordinator.run()
                } catch {
                    if Task.isCancelled { break }
                    logger.error("coordinator: \(error); starting again in 2 s")
                    try? await Task.sleep(for: .seconds(2))
                    continue
                }
                break
            }
        }
        await coordinator.stopParticipants()
        await transport.close()
        logger.info("msgflo stopped")
    }

    /// Runs the service in a group that shuts down gracefully on SIGTERM and SIGINT.
    public func runUntilSignalled() async throws {
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
