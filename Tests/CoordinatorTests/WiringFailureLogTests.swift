import Logging
import MsgFlo
import Testing
@testable import MsgFloCoordinator

/// Bindings that fail on every retry (a big graph whose participants announced queues that do not exist) log one
/// warning per reconcile pass, naming the first failure and how many others, not one line per edge per retry.
@Suite struct WiringFailureLogTests {
    @Test func manyFailingBindingsLogOneLinePerPass() async throws {
        let lines = LogLines()
        let logger = Logger(label: "test") { _ in lines }
        let broker = InMemoryBroker()
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        typealias E = DesiredGraph.Endpoint
        let pairs = 40
        var nodes: [(String, DesiredGraph.Node)] = []
        var edges: [DesiredGraph.Edge] = []
        for i in 0..<pairs {
            nodes += [("a\(i)", .init(component: "Repeat")), ("b\(i)", .init(component: "Repeat"))]
            edges.append(.init(E("a\(i)", "out"), E("b\(i)", "in")))
        }
        var options = CoordinatorOptions()
        options.tick = .milliseconds(20)
        options.retry = .seconds(1)
        let c = Coordinator(transport: t, graph: DesiredGraph(nodes: nodes, edges: edges, initials: []), options: options,
                            logger: logger)
        let task = Task { try await c.run() }
        defer { task.cancel() }
        // Announced, but nobody declared their queues: every binding fails with "no queue".
        let definitions = nodes.map { role, _ in
            ParticipantDefinition(id: "\(role)-00000001", role: role, component: "Repeat",
                                  inports: [PortDefinition(id: "in", queue: "\(role).IN")],
                                  outports: [PortDefinition(id: "out", queue: "\(role).OUT")], heartbeat: 600)
        }
        await c.handle(definitions.map { .success($0) })
        let before = await c.passes
        // Three retries at least.
        for _ in 0..<1_000 where await c.passes < before + 3 { try await Task.sleep(for: .milliseconds(10)) }
        let passes = await c.passes - before + 1
        #expect(passes >= 3)
        let failed = lines.all.filter { $0.contains("failed") }
        #expect(!failed.isEmpty)
        #expect(failed.count <= passes + 1, "\(failed.count) lines for \(passes) passes: \(failed.prefix(5))")
        #expect(failed.contains { $0.contains("other wiring actions") }, "\(failed.prefix(3))")
        #expect(await c.currentPlan.edges.values.filter { $0 != .wired }.count == pairs)
        await t.close()
    }
}
