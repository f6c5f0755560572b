import MsgFlo
import MsgFloCoordinator
@testable import MsgFloTools
import Testing

/// msgflo-setup wires through the coordinator's Reconciler (one shot): msgflo's messages for what cannot be wired,
/// and the daemon's choices on MQTT.
@Suite struct SetupPlanTests {
    typealias E = DesiredGraph.Endpoint

    static let simple = DesiredGraph(nodes: [("a", .init(component: "Repeat")), ("b", .init(component: "Repeat"))],
                                     edges: [.init(E("a", "out"), E("b", "in"))])

    @Test func discoverModeFailuresAreMsgflosMessages() {
        let a = ParticipantDefinition(id: "a-1", role: "a", component: "Repeat",
                                      outports: [PortDefinition(id: "out", queue: "/a/out")])
        let noRole = SetupPlan(Self.simple, definitions: [a], kind: .amqp)
        #expect(noRole.bindings.isEmpty)
        #expect(noRole.failure(["a": a])?.message == "No participant info found for 'b'")

        let b = ParticipantDefinition(id: "b-1", role: "b", component: "Repeat",
                                      inports: [PortDefinition(id: "other", queue: "/b/other")])
        let noPort = SetupPlan(Self.simple, definitions: [a, b], kind: .amqp)
        let message = noPort.failure(["a": a, "b": b])?.message ?? ""
        #expect(message.hasPrefix("Could not find in in [{"), "\(message)")
        #expect(message.contains("/b/other"))

        let ok = SetupPlan(Self.simple, definitions: [a, b.with(inport: "IN", queue: "/b/in")], kind: .amqp)
        #expect(ok.failure([:]) == nil)
        // ports match ignoring case, as the daemon matches them (the .fbp language may change their case)
        #expect(ok.bindings == [.pubsub(src: "/a/out", tgt: "/b/in", edge: Self.simple.edges[0])])
        #expect(ok.plan.actions == [.bind(Binding(.pubsub, src: "/a/out", tgt: "/b/in"), witnesses: ["a-1", "b-1"])])
    }

    /// The part msgflo's setup wires: no IIPs, no exported ports, no edges to nodes without a component.
    @Test func onlyEdgesBetweenParticipantsAreWired() {
        var g = Self.simple
        g.setNode("nocomp", .init(component: nil))
        g.edges.append(.init(E("a", "x"), E("nocomp", "in")))
        g.initials.append(.init("hello", to: E("b", "greet")))
        g.inports.append(.init("IN", E("a", "in")))
        let plan = SetupPlan(g, definitions: SetupPlan.conventionDefinitions(g), kind: .amqp)
        #expect(plan.plan.actions == [.bind(Binding(.pubsub, src: "a.OUT", tgt: "b.IN"), witnesses: ["convention:a", "convention:b"])])
        #expect(plan.pending.isEmpty)
    }

    /// On MQTT, an edge whose target does not take connectinport goes to a source that takes connectoutport, as
    /// the daemon wires it.
    @Test func mqttEdgeGoesToASourceThatTakesConnectoutport() async throws {
        let broker = InMemoryBroker()
        let url = BrokerURL(scheme: .mqtt, host: "in-memory")
        let transport = InMemoryTransport(broker: broker, url: url)
        try await transport.connect()
        let a = InMemoryTransport(broker: broker, url: url)
        try await a.connect()
        try await a.declareInport("a.CONTROL")
        let commands = try await a.consume("a.CONTROL")
        var options = Setup.Options()
        options.timeout = .seconds(1)  // b never announces: setup waits this long for it
        let lines = Lines()
        let setup = Setup(graph: Self.simple, options: options, library: nil, environment: [:],
                          out: { lines.append($0) }, err: { _ in })
        let announcer = Task {
            for _ in 0..<100 {
                try await a.announce(ParticipantDefinition(id: "a-1", role: "a", component: "Repeat",
                    outports: [PortDefinition(id: "out", queue: "a.OUT")], inqueue: "a.CONTROL",
                    capabilities: ["connectoutport"]))
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let outcome = try await setup.run(on: transport, processes: ParticipantProcesses())
        announcer.cancel()
        #expect(outcome.connected.count == 1)
        #expect(outcome.notConnected.isEmpty)
        #expect(lines.all == ["Set up participants []", "Set up bindings:", " PUBSUB: \t a.OUT -> b.IN"])
        for await d in commands {
            let c = try CoordinatorCommand(parsing: d.message)
            #expect(c.command == .connectOutport && c.port == "out" && c.queue == "b.IN")
            break
        }
    }
}

extension ParticipantDefinition {
    fileprivate func with(inport id: String, queue: String) -> ParticipantDefinition {
        var d = self
        d.inports.append(PortDefinition(id: id, queue: queue))
        return d
    }
}
