import FBP
import Foundation
import MsgFlo
import MsgFloCoordinator

/// Reads a graph file with the FBP parser (.fbp, or .json).
public enum GraphFile {
    public static func load(_ path: String) throws -> ToolGraph {
        let text = try FileAccess.read(path, what: "graph")
        _ = text
        throw ToolFailure("graph files cannot be read yet: the FBP parser is not merged")
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
