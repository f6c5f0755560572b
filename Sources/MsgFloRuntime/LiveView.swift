import CoreMetrics
import Foundation
import Logging
import MsgFlo
import MsgFloCoordinator
import MsgFloObserve
import Prometheus
import Synchronization

/// What the live view at `GET /` shows, kept beside the runtime: the graph drawn by ``GraphLayout`` (as our SVG), the
/// state of its nodes and edges, messages per second per edge and the last messages seen on it (from the data taps),
/// inport queue depths (AMQP, sampled), and the recent stderr lines and exits of the processes the daemon started.
/// The page follows it over Server-Sent Events (`/live/events`, one `state` event per second).
package final class LiveView: Sendable {
    let coordinator: Coordinator
    let observability: Observability?
    /// How often queue depths are measured (one passive declare per inport queue; AMQP only).
    let depthInterval: Duration
    /// Messages kept per edge, lines kept per role.
    static let keptMessages = 20
    static let keptLines = 50
    /// Bytes of a message shown.
    static let messageLimit = 2_000

    struct EdgeStats {
        var count = 0
        var sampledCount = 0
        var rate = 0.0
        /// The last messages, as seen: parsed for the page only when it asks (`/live/edge`), not once per message.
        var recent: [Seen] = []
    }

    struct State {
        var edges: [String: EdgeStats] = [:]
        var lines: [String: [JSONValue]] = [:]
        /// role → queue → depth
        var depths: [String: [String: Int]] = [:]
        var depthGauges: [String: Prometheus.Gauge] = [:]
        var layout: (graph: DesiredGraph, svg: String, version: Int)?
        var version = 0
        var shuttingDown = false
        var lastSample = ContinuousClock.now
    }

    let state = Mutex(State())
    /// Messages seen by the data taps (`msgflo_edge_messages_total`), by edge.
    let edgeCounters = Mutex<[String: CoreMetrics.Counter]>([:])

    package init(coordinator: Coordinator, observability: Observability?, depthInterval: Duration = .seconds(10)) {
        self.coordinator = coordinator
        self.observability = observability
        self.depthInterval = depthInterval
    }

    // MARK: - Events (on the tap's thread: quick)

    func observe(_ e: CoordinatorEvent) {
        switch e {
        case .data(let edge, let message):
            let key = FBPRuntime.edgeKey(edge.src, edge.tgt)
            let entry = Seen(time: Date().timeIntervalSince1970, message: message)
            state.withLock { s in
                // In place (no copy of the kept messages per message).
                Self.record(entry, in: &s.edges[key, default: EdgeStats()])
            }
            if let factory = observability?.factory {
                let counter = edgeCounters.withLock { c in
                    if let x = c[key] { return x }
                    let x = CoreMetrics.Counter(label: "msgflo_edge_messages_total",
                                    dimensions: [("src", edge.src.description), ("tgt", edge.tgt.description)], factory: factory)
                    c[key] = x
                    return x
                }
                counter.increment()
            }
        case .processError(let role, let text):
            let line: JSONValue = ["time": .double(Date().timeIntervalSince1970), "text": .string(SafeText.escape(text))]
            state.withLock { s in
                var l = s.lines[role] ?? []
                if l.count >= Self.keptLines { l.removeFirst(l.count - Self.keptLines + 1) }
                l.append(line)
                s.lines[role] = l
            }
        default: break
        }
    }

    /// A message an edge's tap saw, and when. One over ``messageLimit`` is kept as its size only.
    struct Seen {
        var time: Double
        var message: Message?
        var size: Int

        init(time: Double, message: Message) {
            self.time = time
            self.size = message.count
            self.message = message.count > LiveView.messageLimit ? nil : message
        }

        var json: JSONValue {
            ["time": .double(time), "data": message.map(LiveView.shown) ?? .string("<\(size) bytes>")]
        }
    }

    static func record(_ entry: Seen, in stats: inout EdgeStats) {
        stats.count += 1
        if stats.recent.count >= keptMessages { stats.recent.removeFirst(stats.recent.count - keptMessages + 1) }
        stats.recent.append(entry)
    }

    /// A message as the page shows it: its JSON, or its size when it is not JSON or too long.
    static func shown(_ m: Message) -> JSONValue {
        if m.count > messageLimit { return .string("<\(m.count) bytes>") }
        return m.data ?? .string("<\(m.count) bytes, not JSON>")
    }

    // MARK: - Sampling

    /// Rates every second; queue depths every `depthInterval` where the broker counts them (AMQP). Ends at graceful shutdown or cancellation.
    func sampleLoop() async {
        var sinceDepths = depthInterval
        while !Task.isCancelled && !state.withLock({ $0.shuttingDown }) {
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
            sampleRates()
            sinceDepths += .seconds(1)
            if sinceDepths >= depthInterval, await coordinator.brokerView.capabilities.contains(.queueDepth) {
                sinceDepths = .zero
                await sampleDepths()
            }
        }
    }

    func sampleRates() {
        state.withLock { s in
            let now = ContinuousClock.now
            let secs = max(0.001, (now - s.lastSample).inSeconds)
            s.lastSample = now
            for k in s.edges.keys {
                let n = s.edges[k]!.count
                s.edges[k]!.rate = Double(n - s.edges[k]!.sampledCount) / secs
                s.edges[k]!.sampledCount = n
            }
        }
    }

    /// `msgflo_queue_depth` (the descriptor's parts are joined by `_`).
    static var depthName: MetricNameDescriptor { MetricNameDescriptor(namespace: "msgflo", metricName: "queue", unitName: "depth",
                                                helpText: "Messages waiting in an inport queue (AMQP, sampled every 10 s)") }

    func sampleDepths() async {
        let status = await coordinator.status(depths: true)
        var depths: [String: [String: Int]] = [:]
        for row in status.rows where !row.queueDepths.isEmpty { depths[row.role] = row.queueDepths }
        let registry = observability?.registry
        state.withLock { s in
            s.depths = depths
            guard let registry else { return }
            for (role, queues) in depths {
                for (q, d) in queues {
                    let key = role + "\u{0}" + q
                    let g = s.depthGauges[key] ?? registry.makeGauge(descriptor: Self.depthName, labels: [("role", role), ("queue", q)])
                    s.depthGauges[key] = g
                    g.set(to: Double(d))
                }
            }
        }
    }

    func shutDown() { state.withLock { $0.shuttingDown = true } }
    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    // MARK: - What the page reads

    /// The graph drawn (our SVG), and its version (it changes when the graph does).
    func svg() async -> (version: Int, svg: String) {
        let graph = await coordinator.currentGraph
        if let cached = state.withLock({ s in s.layout.flatMap { $0.graph == graph ? ($0.version, $0.svg) : nil } }) {
            return cached
        }
        let svg = LiveDrawing.svg(graph)
        return state.withLock { s in
            if let l = s.layout, l.graph == graph { return (l.version, l.svg) }
            s.version += 1
            s.layout = (graph, svg, s.version)
            return (s.version, svg)
        }
    }

    /// The names the SVG's `data-` attributes carry (GraphLayout's display text).
    static func shownName(_ s: String) -> String { LiveDrawing.displayText(s) }
    static func shownPort(_ e: DesiredGraph.Endpoint) -> String { shownName(e.role) + "." + shownName(e.port) }

    /// The `state` event: nodes with their state, processes and queue depths; edges with state and rate.
    func stateJSON() async -> JSONValue {
        let (version, _) = await svg()
        let graph = await coordinator.currentGraph
        let obs = await coordinator.observation
        let broker = await coordinator.brokerView
        let (edgeStats, depths) = state.withLock { s in (s.edges, s.depths) }
        var nodes: JSONObject = [:]
        for role in graph.roles {
            let entries = obs.registry.participants(role: role)
            let alive = entries.filter(\.alive).count
            let st: String
            if !graph.isParticipant(role) { st = "virtual" } else if alive > 0 { st = "alive" } else if entries.isEmpty { st = "pending" } else { st = "lost" }
            var o: JSONObject = ["state": .string(st), "alive": .int(alive), "processes": .int(entries.count)]
            if let d = depths[role] { o["depth"] = .int(d.values.reduce(0, +)) }
            nodes[Self.shownName(role)] = .object(o)
        }
        var edges: [JSONValue] = []
        var pending = 0
        for edge in graph.edges {
            var o: JSONObject = ["src": .string(Self.shownPort(edge.src)), "tgt": .string(Self.shownPort(edge.tgt))]
            switch obs.plan.edges[edge] {
            case .wired?: o["state"] = "wired"
            case .pending(let why)?: o["state"] = "pending"; o["why"] = .string(why); pending += 1
            case nil: o["state"] = "pending"; pending += 1
            }
            let stats = edgeStats[FBPRuntime.edgeKey(edge.src, edge.tgt)]
            o["rate"] = .double((stats?.rate ?? 0).rounded())
            o["count"] = .int(stats?.count ?? 0)
            edges.append(.object(o))
        }
        return [
            "version": .int(version), "graph": .string(graph.name), "connected": .bool(broker.connected),
            "broker": .string(broker.broker),
            "nodes": .object(nodes), "edges": .array(edges), "pendingEdges": .int(pending),
        ]
    }

    /// What changed between two `state` events of one graph version: the top-level fields as they are now, and only
    /// the nodes (by id) and the edges (by `src` and `tgt`) whose objects differ. Nil when the version changed: the
    /// page needs the whole state then (and a new drawing).
    static func delta(from old: JSONValue, to new: JSONValue) -> JSONValue? {
        guard case .object(var out) = new, old["version"] == new["version"],
              case .object(let oldNodes)? = old["nodes"], case .object(let newNodes)? = new["nodes"],
              case .array(let oldEdges)? = old["edges"], case .array(let newEdges)? = new["edges"] else { return nil }
        out["nodes"] = .object(JSONObject(newNodes.filter { k, v in oldNodes[k] != v }))
        func id(_ e: JSONValue) -> String { (e["src"]?.stringValue ?? "") + "\u{0}" + (e["tgt"]?.stringValue ?? "") }
        var before: JSONObject = [:]
        for e in oldEdges { before[id(e)] = e }
        out["edges"] = .array(newEdges.filter { before[id($0)] != $0 })
        return .object(out)
    }

    /// The last messages on the edge whose SVG attributes are `src` and `tgt` (`role.port` as drawn).
    func edgeJSON(src: String, tgt: String) async -> JSONValue? {
        let graph = await coordinator.currentGraph
        guard let edge = graph.edges.first(where: { Self.shownPort($0.src) == src && Self.shownPort($0.tgt) == tgt }) else { return nil }
        let stats = state.withLock { $0.edges[FBPRuntime.edgeKey(edge.src, edge.tgt)] }
        let st = await coordinator.currentPlan.edges[edge]
        var o: JSONObject = [
            "src": .string(edge.src.description), "tgt": .string(edge.tgt.description),
            "count": .int(stats?.count ?? 0), "rate": .double((stats?.rate ?? 0).rounded()),
            "messages": .array((stats?.recent ?? []).map(\.json)),
        ]
        if case .pending(let why)? = st { o["state"] = "pending"; o["why"] = .string(why) } else if st == .wired { o["state"] = "wired" }
        return .object(o)
    }

    /// A node's processes (discovery ids, alive or lost, seconds since last heard, the pid of the child the daemon
    /// runs) and the last stderr lines and exits of that child.
    func nodeJSON(role shown: String) async -> JSONValue? {
        let graph = await coordinator.currentGraph
        guard let role = graph.roles.first(where: { Self.shownName($0) == shown }) else { return nil }
        let obs = await coordinator.observation
        let now = Date().timeIntervalSince1970
        let processes: [JSONValue] = obs.registry.participants(role: role).map { e in
            ["id": .string(e.definition.id), "alive": .bool(e.alive), "silentFor": .double((now - e.lastSeen).rounded()),
             "component": .string(e.definition.component)]
        }
        var o: JSONObject = [
            "role": .string(role), "component": .string(graph.nodes[role]?.component ?? ""),
            "processes": .array(processes), "stderr": .array(state.withLock { $0.lines[role] ?? [] }),
        ]
        if let pid = await coordinator.childPID(role) { o["pid"] = .int(Int(pid)) }
        if let d = state.withLock({ $0.depths[role] }) { o["queueDepths"] = .object(JSONObject(d.mapValues { .int($0) })) }
        return .object(o)
    }
}
