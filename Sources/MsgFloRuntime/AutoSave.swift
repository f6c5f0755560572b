import FBP
import Foundation
import Logging
import MsgFlo
import MsgFloCoordinator
import Synchronization

/// `--auto-save`: writes the graph back to its file after every change, debounced (one write per `delay` of
/// quiet), atomically (a temporary file beside it, fsync, rename), in the file's own format: a `.fbp` stays `.fbp`
/// (through the FBP module's lossless serializer), anything else is written as the JSON graph format.
final class AutoSaver: Sendable {
    struct Snapshot: Sendable {
        var graph: DesiredGraph
        var groups: [(name: String, nodes: [String], metadata: JSONValue?)]
    }

    let path: String
    let delay: Duration
    let logger: Logger
    struct State {
        var generation = 0
        var pending: (@Sendable () async -> Snapshot)?
        var writer: Task<Void, Never>?
    }
    let state = Mutex(State())

    init(path: String, delay: Duration, logger: Logger) {
        self.path = path
        self.delay = delay
        self.logger = logger
    }

    /// A change happened: write `snapshot()` once nothing has changed for `delay`.
    func schedule(_ snapshot: @escaping @Sendable () async -> Snapshot) {
        let (generation, start) = state.withLock { s -> (Int, Bool) in
            s.generation += 1
            s.pending = snapshot
            return (s.generation, s.writer == nil)
        }
        guard start else { return }
        let task = Task { await self.writeWhenQuiet(seen: generation) }
        state.withLock { s in if s.writer == nil { s.writer = task } }
    }

    private func writeWhenQuiet(seen first: Int) async {
        var seen = first
        while true {
            try? await Task.sleep(for: delay)
            let (now, snapshot) = state.withLock { s in (s.generation, s.pending) }
            if now != seen { seen = now; continue }
            if let snapshot { save(await snapshot()) }
            let done = state.withLock { s -> Bool in
                if s.generation != seen { return false }
                s.pending = nil
                s.writer = nil
                return true
            }
            if done { return }
            seen = state.withLock { $0.generation }
        }
    }

    /// Writes what is pending now (at shutdown).
    func flush() async {
        let (snapshot, writer) = state.withLock { s -> ((@Sendable () async -> Snapshot)?, Task<Void, Never>?) in
            let p = s.pending
            s.pending = nil
            s.generation += 1
            return (p, s.writer)
        }
        writer?.cancel()
        if let snapshot { save(await snapshot()) }
    }

    private func save(_ s: Snapshot) {
        do {
            try Self.write(s, to: path)
            logger.info("graph saved to \(path)")
        } catch {
            logger.error("cannot save the graph to \(path): \(error)")
        }
    }

    static func write(_ s: Snapshot, to path: String) throws {
        let graph = fbpGraph(s)
        let bytes: [UInt8]
        if path.lowercased().hasSuffix(".fbp") {
            bytes = Array(FBP.serialize(graph).text.utf8)
        } else {
            bytes = graph.jsonBytes(indent: 2) + [10]
        }
        try atomicWrite(bytes, to: path)
    }

    /// Temporary file in the same directory, fsync, rename over the target: readers see the old file or the new.
    static func atomicWrite(_ bytes: [UInt8], to path: String) throws {
        let tmp = path + ".msgflo-autosave-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MsgFloError(.io, "cannot create \(tmp): errno \(errno)") }
        var ok = true
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = Foundation.write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { ok = false; break }
                off += n
            }
        }
        if ok && fsync(fd) != 0 { ok = false }
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw MsgFloError(.io, "cannot write \(path): errno \(e)")
        }
    }

    /// The desired graph as an FBP graph (processes, connections with IIPs in graph order, exported ports, groups).
    static func fbpGraph(_ s: Snapshot) -> FBPGraph {
        let g = s.graph
        var out = FBPGraph()
        out.properties = JSONObject([("name", .string(g.name))])
        for role in g.roles {
            let node = g.nodes[role]!
            out.processes[role] = Process(component: node.namesComponent ? node.component : nil,
                                          metadata: node.metadata.flatMap { $0.objectValue })
        }
        for e in g.edges {
            out.connections.append(Connection(src: PortRef(process: e.src.role, port: e.src.port),
                                              tgt: PortRef(process: e.tgt.role, port: e.tgt.port),
                                              metadata: e.metadata.flatMap { $0.objectValue }))
        }
        for i in g.initials {
            out.connections.append(Connection(data: i.data, tgt: PortRef(process: i.tgt.role, port: i.tgt.port),
                                              metadata: i.metadata.flatMap { $0.objectValue }))
        }
        for e in g.inports { out.inports[e.name] = ExportedPort(process: e.endpoint.role, port: e.endpoint.port) }
        for e in g.outports { out.outports[e.name] = ExportedPort(process: e.endpoint.role, port: e.endpoint.port) }
        for group in s.groups {
            var o: [(String, JSONValue)] = [("name", .string(group.name)), ("nodes", .array(group.nodes.map { .string($0) }))]
            if let m = group.metadata { o.append(("metadata", m)) }
            out.groups.append(.object(JSONObject(o)))
        }
        return out
    }
}
