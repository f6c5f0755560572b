import FBP
import Foundation
import MsgFlo
import MsgFloCoordinator

/// Reads a graph file with the FBP parser: `.fbp` text, anything else as a JSON graph (as msgflo does). Port names
/// of `.fbp` files are lower-cased, as msgflo's parser does. Errors are one line, `file:line:column: message`;
/// warnings (things the language silently drops) go to stderr.
public enum GraphFile {
    public static func load(_ path: String, warn: (String) -> Void = Output.error) throws -> ToolGraph {
        let text = try FileAccess.read(path, what: "graph")
        let graph: Graph
        do {
            if path.hasSuffix(".fbp") {
                let result = try FBP.parse(text)
                for w in result.warnings { warn("\(path):\(w)") }
                graph = result.graph
            } else {
                graph = try Graph(jsonText: text)
            }
        } catch let error as FBPError {
            throw ToolFailure("\(path):\(error.location == nil ? " " : "")\(error)")
        } catch {
            throw ToolFailure("\(path): \(error)")
        }
        return toolGraph(graph)
    }

    public static func toolGraph(_ graph: Graph) -> ToolGraph {
        let processes = graph.processes.map { ToolGraph.Process(name: $0.0, component: $0.1.component) }
        var connections: [ToolGraph.Connection] = []
        for c in graph.connections {
            let tgt = ToolGraph.Endpoint(c.tgt.process, c.tgt.port)
            if let src = c.src {
                connections.append(.edge(.init(src: .init(src.process, src.port), tgt: tgt)))
            } else if let data = c.data {
                connections.append(.initial(.init(data: convert(data), tgt: tgt)))
            }
        }
        return ToolGraph(processes: processes, connections: connections)
    }

    static func convert(_ value: FBPJSONValue) -> MsgFlo.JSONValue {
        switch value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let d): return d.rounded() == d && abs(d) < 9.0e15 ? .int(Int(d)) : .double(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(convert))
        case .object(let o):
            var out: [String: MsgFlo.JSONValue] = [:]
            for (k, v) in o { out[k] = convert(v) }
            return .object(out)
        }
    }
}

/// The coordinator's component library (`MsgFloCoordinator.ComponentLibrary`), as the tools use it: the same file
/// format, lookup and template expansion as the `msgflo` daemon.
public struct LibraryFile: CommandLibrary {
    public let library: ComponentLibrary

    public init(_ library: ComponentLibrary) { self.library = library }

    /// Reads the library file (its `msgflo` key or the whole file) and scans `componentdir`.
    public static func load(_ path: String, componentdir: String?) throws -> LibraryFile {
        do {
            return LibraryFile(try ComponentLibrary.load(path: path, componentDirectory: componentdir))
        } catch {
            throw ToolFailure(error.message)
        }
    }

    /// A library from JSON text (tests, and libraries given inline).
    public init(json text: String, componentdir: String? = nil) throws {
        do {
            library = try ComponentLibrary(config: LibraryConfig(json: text), componentDirectory: componentdir)
        } catch {
            throw ToolFailure(error.message)
        }
    }

    public func command(component: String, role: String, graph: ToolGraph) throws -> String {
        let iips = graph.initials.filter { $0.tgt.process == role }.map { (port: $0.tgt.port, data: $0.data) }
        do {
            return try library.command(component: component, role: role, iips: iips)
        } catch {
            throw ToolFailure(error.message)
        }
    }
}
