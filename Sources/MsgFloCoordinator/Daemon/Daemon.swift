import Foundation
import Logging
import MsgFlo
import ServiceLifecycle
import Synchronization

/// The `msgflo` daemon's settings, as the command line gives them.
package struct DaemonConfiguration: Sendable {
    package var broker: BrokerURL
    package var graphPath: String?
    /// `--library`; msgflo's default is `package.json`, which may be absent (then no participant is started).
    package var libraryPath = "package.json"
    package var libraryGiven = false
    package var componentDirectory = "participants"
    package var options = CoordinatorOptions()

    package init(broker: BrokerURL) { self.broker = broker }

    /// Loads the graph and the library: errors here are the user's (a bad file) and stop the start with one line.
    package func load(logger: Logger) throws(MsgFloError) -> (DesiredGraph, CoordinatorOptions) {
        var graph = DesiredGraph()
        if let graphPath {
            graph = try GraphFile.load(graphPath, warn: { logger.warning("\($0)") })
            // The daemon may well start before its participants exist, but not without a single node to keep.
            if graph.roles.isEmpty { logger.warning("graph \(graphPath) has no processes: nothing to wire") }
        }
        // Exported ports become queues of their own (graph.PORT): a name the broker cannot take stops the start.
        for e in graph.inports + graph.outports {
            try WireName.check(graph.exportedQueue(e), WireName.Broker(broker), what: "\(graphPath ?? "graph"): exported port queue")
        }
        var options = self.options
        if libraryGiven || FileManager.default.fileExists(atPath: libraryPath) {
            let library = try ComponentLibrary.load(path: libraryPath, componentDirectory: componentDirectory)
            logger.debug("component library \(libraryPath): \(library.names.joined(separator: ", "))")
            options.library = library
        } else {
            logger.info("no component library (\(libraryPath) not found): starting no participants")
        }
        return (graph, options)
    }
}

/// The coordinator as a long-lived service: connects (retrying while the broker is away), runs until graceful
/// shutdown (SIGTERM, SIGINT through `ServiceGroup`), then stops the children and closes the connection.
package struct CoordinatorService: Service {
    package let coordinator: Coordinator
    package let transport: any Transport
    let logger: Logger

    package init(coordinator: Coordinator, logger: Logger) {
        self.coordinator = coordinator
        self.transport = coordinator.transport
        self.logger = logger
    }

    /// SIGTERM to children at once, SIGKILL this long after.
    package static let childGrace: Duration = .seconds(5)
    /// How long the shutdown waits for the connection to close before it leaves the close behind: a broker that is
    /// silent must not hold the daemon up (the process exits; the kernel closes the socket). The connection's work
    /// (connecting, the coordinator's loop) needs no such bound: its transport calls end at once when cancelled.
    package static let connectionGrace: Duration = .seconds(1)

    package func run() async throws {
        let supervisor = coordinator.supervisor
        if coordinator.options.standby {
            // Before connecting: on MQTT the election needs a last will.
            do { try transport.prepareLock(CoordinatorElection.lock, instance: coordinator.options.instance) } catch {
                throw MsgFloError(.invalidArgument, "--standby: \(error)")
            }
        }
        // Children first and at once, whatever the broker is doing; no restart from now on.
        @Sendable func stopChildren() { supervisor?.beginShutdown(grace: Self.childGrace) }
        // The connection's work, cancelled at graceful shutdown (SIGTERM, SIGINT) or when this task is cancelled.
        // Transport calls end at once when cancelled, so it ends at once too; a start-up failure that waiting cannot
        // cure (wrong password, unknown vhost, TLS verification, wrong protocol) ends it by itself and is thrown
        // once the shutdown below is done.
        let startFailure = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await cancelWhenGracefulShutdown { await connectionWork() }
            } onGracefulShutdown: {
                stopChildren()
            }
        } onCancel: {
            stopChildren()
        }
        stopChildren()
        await supervisor?.stopAll(grace: Self.childGrace)
        if !(await Self.closeWithin(Self.connectionGrace, transport)) {
            logger.warning("the broker connection did not close within \(Self.connectionGrace); leaving it")
        }
        if let startFailure { throw startFailure }
        logger.info("msgflo stopped")
    }

    /// Connects (retrying while the broker is away), waits to be elected under `--standby`, and runs the
    /// coordinator (again after an error) until cancelled. Returns the error that ends it by itself: a start-up
    /// failure waiting cannot cure, or a lost election.
    private func connectionWork() async -> MsgFloError? {
        var delay = Duration.milliseconds(500)
        while !Task.isCancelled {
            do {
                try await transport.connect()
                break
            } catch let error as MsgFloError where error.isConfigurationError {
                // Wrong password, unknown vhost, TLS verification, wrong protocol: waiting will not cure it.
                return error
            } catch {
                if Task.isCancelled { return nil }
                logger.warning("cannot connect to \(transport.broker): \(error); trying again in \(delay)")
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
        let standby = coordinator.options.standby
        if standby {
            let instance = coordinator.options.instance
            do {
                try await CoordinatorElection.waitUntilActive(transport, instance: instance, logger: logger)
            } catch let error as MsgFloError {
                return error
            } catch {
                return nil  // cancelled: shutting down while standing by
            }
            logger.notice("elected: \(instance) is the active coordinator on \(transport.broker)")
        }
        let (coordinator, transport, logger) = (coordinator, transport, logger)
        while !Task.isCancelled {
            do {
                if standby {
                    // Runs while elected: losing the lock (another instance took over while this one's
                    // connection was away) ends the daemon, and its children with it.
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await coordinator.run() }
                        group.addTask {
                            try await CoordinatorElection.keepActive(transport, instance: coordinator.options.instance,
                                                                     logger: logger)
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                } else {
                    try await coordinator.run()
                }
            } catch let error as MsgFloError where error.code == .preconditionFailed && standby {
                logger.error("\(error.message)")
                return error
            } catch {
                if Task.isCancelled { break }
                logger.error("coordinator: \(error); starting again in 2 s")
                try? await Task.sleep(for: .seconds(2))
                continue
            }
            break
        }
        return nil
    }

    /// Closes `transport`, waiting at most `grace`; true when it closed in time. A close held up by a broker that
    /// is silent (up to the transport's operation timeout) is left behind: the process exits and the kernel closes
    /// the socket. The close runs in the one task here that is not structured, by necessity: a child task cannot be
    /// left behind.
    static func closeWithin(_ grace: Duration, _ transport: any Transport) async -> Bool {
        let (closed, signal) = AsyncStream<Void>.makeStream()
        Task {
            await transport.close()
            signal.finish()
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in closed {}
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: grace)
                return false
            }
            let inTime = await group.next() ?? false
            group.cancelAll()
            return inTime
        }
    }

    /// Runs the service in a group that shuts down gracefully on SIGTERM and SIGINT.
    package func runUntilSignalled() async throws {
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
