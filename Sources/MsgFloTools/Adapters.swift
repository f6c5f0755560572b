import FBP
import Foundation
import MsgFlo
import MsgFloCoordinator

/// Turns a component and a role into the command that starts it (the component library).
package protocol CommandLibrary: Sendable {
    /// The command line for `component` running as `role`, with `#ROLE` and `#IIPS` expanded. Throws msgflo's
    /// `No component <component> defined for role <role>` when the library has no such component.
    func command(component: String, role: String, graph: DesiredGraph) throws -> String
}

/// The coordinator's component library (`MsgFloCoordinator.ComponentLibrary`), as the tools use it: the same file
/// format, lookup and template expansion as the `msgflo` daemon.
package struct LibraryFile: CommandLibrary {
    package let library: ComponentLibrary

    package init(_ library: ComponentLibrary) { self.library = library }

    /// Reads the library file (its `msgflo` key or the whole file) and scans `componentdir`.
    package static func load(_ path: String, componentdir: String?) throws -> LibraryFile {
        do {
            return LibraryFile(try ComponentLibrary.load(path: path, componentDirectory: componentdir))
        } catch {
            throw ToolFailure(error.message)
        }
    }

    /// A library from JSON text (tests, and libraries given inline).
    package init(json text: String, componentdir: String? = nil) throws {
        do {
            library = try ComponentLibrary(config: LibraryConfig(json: text), componentDirectory: componentdir)
        } catch {
            throw ToolFailure(error.message)
        }
    }

    package func command(component: String, role: String, graph: DesiredGraph) throws -> String {
        do {
            return try library.command(component: component, role: role, iips: graph.iips(for: role))
        } catch {
            throw ToolFailure(error.message)
        }
    }
}
