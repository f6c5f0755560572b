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
    /// How long the shutdown waits for the connection's own work (connecting, the coordinator's loop) to notice it
    /// is cancelled, and then for the connection to close, before it leaves them behind: a broker that is away or
    /// silent must not hold the daemon up (the process exits; the kernel closes the socket).
    package static let connectionGrace: Duration = .seconds(1)

    package func run() async throws {
        let supervisor = coordinator.supervisor
        // A start-up failure that waiting cannot cure (wrong password, unknown vhost, TLS verification, wrong
        // protocol) ends the work by itself and is thrown once the shutdown below is done.
        let startFailure = FailureBox()
        // The connection's work runs in a task of its own, so that shutdown can leave it behind when a call into the
        // broker's library does not return in time; everything else is awaited. (Transport calls end at once when
        // cancelled, so it normally ends within the grace; a child task could not be left behind at all.)
        if coordinator.options.standby {
            // Before connecting: on MQTT the election needs a last will.
            do { try transport.prepareLock(CoordinatorElection.lock, instance: coordinator.options.instance) } catch {
                throw MsgFloError(.invalidArgument, "--standby: \(error)")
            }
        }
        let work = Task { [coordinator, transport, logger] in
            var delay = Duration.milliseconds(500)
            while !Task.isCancelled {
                do {
                    try await transport.connect()
                    break
                } catch let error as MsgFloError where error.isConfigurationError {
                    // Wrong password, unknown vhost, TLS verification, wrong protocol: waiting will not cure it.
                    startFailure.set(error)
                    return
                } catch {
                    if Task.isCancelled { return }
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
                    startFailure.set(error)
                    return
                } catch {
                    return  // cancelled: shutting down while standing by
                }
                logger.notice("elected: \(instance) is the active coordinator on \(transport.broker)")
            }
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
                    startFailure.set(error)
                    return
                } catch {
                    if Task.isCancelled { break }
                    logger.error("coordinator: \(error); starting again in 2 s")
                    try? await Task.sleep(for: .seconds(2))
                    continue
                }
                break
            }
        }
        // Ends when the work ends by itself or shutdown begins, whichever comes first.
        let (ended, signal) = AsyncStream<Void>.makeStream()
        // Unstructured like `work`: a watcher in a task group would hold the shutdown until `work` ends.
        let watcher = Task {
            await work.value
            signal.yield()
        }
        @Sendable func shutDown() {
            // Children first and at once, whatever the broker is doing; no restart from now on.
            supervisor?.beginShutdown(grace: Self.childGrace)
            work.cancel()
            signal.yield()
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                for await _ in ended { break }
            } onCancel: {
                shutDown()
            }
        } onGracefulShutdown: {
            shutDown()
        }
        shutDown()
        watcher.cancel()
        if !(await waitAtMost(Self.connectionGrace, for: work)) {
            logger.warning("the broker connection did not wind down within \(Self.connectionGrace); leaving it")
        }
        await supervisor?.stopAll(grace: Self.childGrace)
        // Unstructured so that a close held by a silent broker (up to its operation timeout) is left behind after
        // the grace: the process exits and the kernel closes the socket.
        let closing = Task { [transport] in await transport.close() }
        if !(await waitAtMost(Self.connectionGrace, for: closing)) {
            logger.warning("the broker connection did not close within \(Self.connectionGrace); leaving it")
        }
        if let failure = startFailure.get() { throw failure }
        logger.info("msgflo stopped")
    }

    /// Runs the service in a group that shuts down gracefully on SIGTERM and SIGINT.
    package func runUntilSignalled() async throws {
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// The one error that ends the daemon's connection work by itself, handed from that task to `run()`.
final class FailureBox: Sendable {
    private let value = Mutex<MsgFloError?>(nil)
    func set(_ e: MsgFloError) { value.withLock { $0 = e } }
    func get() -> MsgFloError? { value.withLock { $0 } }
}

/// Waits until `task` ends or `timeout` passes, whichever comes first; true when the task ended. The task is not
/// cancelled here; when time runs out it is left to end on its own (or with the process).
func waitAtMost(_ timeout: Duration, for task: Task<Void, Never>) async -> Bool {
    final class Once: Sendable {
        let done = Mutex(false)
        func take() -> Bool { done.withLock { d in defer { d = true }; return !d } }
    }
    let once = Once()
    return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
        // Two waiters race; the loser is left to end by itself (a sleep, or a task that ends with the process).
        Task { await task.value; if once.take() { c.resume(returning: true) } }
        Task { try? await Task.sleep(for: timeout); if once.take() { c.resume(returning: false) } }
    }
}
