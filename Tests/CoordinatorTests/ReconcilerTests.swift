import MsgFlo
import Testing
import TestSupport
@testable import MsgFloCoordinator

@Suite struct ReconcilerTests {
    typealias E = DesiredGraph.Endpoint

    static let graph = DesiredGraph(
        nodes: [("a", .init(component: "Repeat")), ("b", .init(component: "Repeat"))],
        edges: [.init(E("a", "out"), E("b", "in"))],
        initials: [.init("hello", to: E("a", "in"))])

    /// Runs the plan and records every action as done.
    func apply(_ r: Reconciler, _ g: DesiredGraph, _ reg: ParticipantRegistry, _ s: inout WiringState) -> WiringPlan {
        let p = r.plan(graph: g, registry: reg, state: &s)
        for a in p.actions { s.record(a) }
        return p
    }

    @Test func pendingUntilParticipantsAppear() {
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        var p = apply(r, Self.graph, reg, &s)
        #expect(p.actions.isEmpty)
        #expect(p.pendingRoles == ["a", "b"])
        #expect(p.edges.values.allSatisfy { if case .pending = $0 { true } else { false } })

        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        // a's IIP waits while a's outgoing edge is pending (what it sets off would be lost)...
        p = r.plan(graph: Self.graph, registry: reg, state: &s, now: 1)
        #expect(p.actions.isEmpty)
        #expect(p.iipsHeldUntil == 10)
        #expect(p.pendingRoles == ["b"])

        // ...and goes once the edge is bound, after it.
        _ = reg.observe(participant("b-1", role: "b"), at: 1)
        p = r.plan(graph: Self.graph, registry: reg, state: &s, now: 2)
        for a in p.actions { s.record(a) }
        #expect(p.actions == [.bind(Binding(src: "a.OUT", tgt: "b.IN"), witnesses: ["a-1", "b-1"]),
                              .sendIIP(participant: "a-1", role: "a", port: "in", queue: "a.IN", data: "hello")])
        #expect(p.pendingRoles == [])
        #expect(p.edges[Self.graph.edges[0]] == .wired)

        // Idempotent.
        #expect(apply(r, Self.graph, reg, &s).actions.isEmpty)
    }

    @Test func iipIsSentAfterTheGraceEvenIfTheEdgeStaysPending() {
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        #expect(r.plan(graph: Self.graph, registry: reg, state: &s, now: 9.9).actions.isEmpty)
        #expect(r.plan(graph: Self.graph, registry: reg, state: &s, now: 10).actions
                == [.sendIIP(participant: "a-1", role: "a", port: "in", queue: "a.IN", data: "hello")])
    }

    @Test func restartedParticipantIsWiredAndFedAgain() {
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry(defaultTimeout: 5)
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b"), at: 0)
        _ = apply(r, Self.graph, reg, &s)
        // a-1 dies (lost), a-2 takes the role.
        _ = reg.observe(participant("b-1", role: "b"), at: 6)
        _ = reg.tick(at: 6)
        #expect(apply(r, Self.graph, reg, &s).actions.isEmpty)   // lost: nothing to undo on AMQP, binding stays
        _ = reg.observe(participant("a-2", role: "a"), at: 7)
        let p = apply(r, Self.graph, reg, &s)
        #expect(p.actions == [
            .bind(Binding(src: "a.OUT", tgt: "b.IN"), witnesses: ["a-2", "b-1"]),
            .sendIIP(participant: "a-2", role: "a", port: "in", queue: "a.IN", data: "hello"),
        ])
        // The same process coming back after being lost is not fed twice.
        _ = reg.tick(at: 100)
        _ = reg.observe(participant("a-2", role: "a"), at: 101)
        _ = reg.observe(participant("b-1", role: "b"), at: 101)
        #expect(apply(r, Self.graph, reg, &s).actions.isEmpty)
    }

    @Test func failedBindingKeepsTheEdgePendingAndIsRetried() {
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b"), at: 0)
        let p = r.plan(graph: Self.graph, registry: reg, state: &s)
        // Only the IIP went through; the bind failed.
        for a in p.actions { if case .sendIIP = a { s.record(a) } }
        #expect(p.settled(with: s)[Self.graph.edges[0]] == .pending("binding a.OUT -> b.IN failed; retrying"))
        let again = r.plan(graph: Self.graph, registry: reg, state: &s)
        #expect(again.actions == [.bind(Binding(src: "a.OUT", tgt: "b.IN"), witnesses: ["a-1", "b-1"])])
        for a in again.actions { s.record(a) }
        #expect(again.settled(with: s)[Self.graph.edges[0]] == .wired)
    }

    @Test func edgeRemovedFromGraphIsUnbound() {
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b"), at: 0)
        _ = apply(r, Self.graph, reg, &s)
        var g = Self.graph
        g.edges = []
        #expect(apply(r, g, reg, &s).actions == [.unbind(Binding(src: "a.OUT", tgt: "b.IN"))])
        #expect(s.bindings.isEmpty)
    }

    @Test func mqttUsesConnectInportWhereSupported() {
        let r = Reconciler(kind: .mqtt)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b", commands: true), at: 0)
        let p = apply(r, Self.graph, reg, &s)
        #expect(p.actions.contains(.command(participant: "b-1", inqueue: "b.COMMANDS",
                                            CoordinatorCommand(.connectInport, port: "in", queue: "a.OUT", graph: "default/main"))))
        #expect(!p.actions.contains { if case .bind = $0 { true } else { false } })
        // Removing the edge sends disconnectinport.
        var g = Self.graph
        g.edges = []
        #expect(apply(r, g, reg, &s).actions == [.command(participant: "b-1", inqueue: "b.COMMANDS",
                                                          CoordinatorCommand(.disconnectInport, port: "in", queue: "a.OUT", graph: "default/main"))])
    }

    @Test func mqttRestartedCommandTakerGetsItsCommandAgain() {
        let r = Reconciler(kind: .mqtt)
        var reg = ParticipantRegistry(defaultTimeout: 5)
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b", commands: true), at: 0)
        _ = apply(r, Self.graph, reg, &s)
        _ = reg.observe(participant("a-1", role: "a"), at: 6)
        _ = reg.tick(at: 6)   // b-1 lost
        let lost = apply(r, Self.graph, reg, &s)
        #expect(lost.edges[Self.graph.edges[0]] == .pending("no live participant for role b"))
        #expect(s.commands.isEmpty)   // forgotten without a disconnect: nobody to tell
        _ = reg.observe(participant("b-2", role: "b", commands: true), at: 7)
        let back = apply(r, Self.graph, reg, &s)
        #expect(back.actions == [.command(participant: "b-2", inqueue: "b.COMMANDS",
                                          CoordinatorCommand(.connectInport, port: "in", queue: "a.OUT", graph: "default/main"))])
    }

    @Test func mqttFallsBackToRouting() {
        let r = Reconciler(kind: .mqtt)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b"), at: 0)
        let p = apply(r, Self.graph, reg, &s)
        #expect(p.actions.first == .bind(Binding(src: "a.OUT", tgt: "b.IN"), witnesses: ["a-1", "b-1"]))
    }

    @Test func roundRobinAndDeadLetter() {
        let g = DesiredGraph(
            nodes: [("api", .init(component: "Api")), ("rr", .init(component: DesiredGraph.roundRobin)),
                    ("worker", .init(component: "Work")), ("dead", .init(component: "Drop"))],
            edges: [.init(E("api", "out"), E("rr", "in")), .init(E("rr", "out"), E("worker", "in")),
                    .init(E("rr", "deadletter"), E("dead", "in"))])
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        for (id, role) in [("api-1", "api"), ("w-1", "worker"), ("d-1", "dead")] { _ = reg.observe(participant(id, role: role), at: 0) }
        let p = apply(r, g, reg, &s)
        let binds = p.actions.compactMap { if case .bind(let b, _) = $0 { b } else { nil } }
        #expect(Set(binds) == [Binding(.roundRobin, src: "api.OUT", tgt: "worker.IN"),
                               Binding(.deadLetter, src: "worker.IN", tgt: "dead.IN")])
        #expect(p.pendingRoles == [])
        #expect(p.edges.values.allSatisfy { $0 == .wired })
    }

    @Test func exportedPortsGetPublicQueues() {
        var g = Self.graph
        g.inports = [.init("in", E("a", "in"))]
        g.outports = [.init("out", E("b", "out"))]
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a"), at: 0)
        _ = reg.observe(participant("b-1", role: "b"), at: 0)
        let p = apply(r, g, reg, &s)
        #expect(p.actions.contains(.declareOutport("main.IN")))
        #expect(p.actions.contains(.declareInport("main.OUT")))
        #expect(p.actions.contains(.bind(Binding(src: "main.IN", tgt: "a.IN"), witnesses: ["a-1"])))
        #expect(p.actions.contains(.bind(Binding(src: "b.OUT", tgt: "main.OUT"), witnesses: ["b-1"])))
        #expect(apply(r, g, reg, &s).actions.isEmpty)
    }

    @Test func missingPortIsPendingWithAReason() {
        let r = Reconciler(kind: .amqp)
        var reg = ParticipantRegistry()
        var s = WiringState()
        _ = reg.observe(participant("a-1", role: "a", outs: ["other"]), at: 0)
        _ = reg.observe(participant("b-1", role: "b"), at: 0)
        let p = apply(r, Self.graph, reg, &s)
        #expect(p.edges[Self.graph.edges[0]] == .pending("a has no outport 'out'"))
    }

    @Test(.offThePool) func thousandNodePlanIsQuick() {
        var g = DesiredGraph()
        var reg = ParticipantRegistry()
        for i in 0..<1000 {
            g.setNode("n\(i)", .init(component: "Repeat"))
            _ = reg.observe(participant("n\(i)-x", role: "n\(i)", outs: ["out", "err"]), at: 0)
        }
        for i in 0..<1000 {
            g.edges.append(.init(E("n\(i)", "out"), E("n\((i + 1) % 1000)", "in")))
            g.edges.append(.init(E("n\(i)", "err"), E("n\((i + 7) % 1000)", "in")))
        }
        var s = WiringState()
        let p = apply(Reconciler(kind: .amqp), g, reg, &s)
        #expect(p.actions.count == 2000)
        #expect(apply(Reconciler(kind: .amqp), g, reg, &s).actions.isEmpty)
    }
}
