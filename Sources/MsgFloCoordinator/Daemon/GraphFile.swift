import FBP
import Foundation
import MsgFlo

/// Reads a graph file: `.fbp` text through the FBP parser, anything else as the JSON graph format (as msgflo does).
/// The one loader of the project: the daemon's `--graph`, msgflo-setup, msgflo-procfile and msgflo-queues use it.
///
/// The file is checked before the parser sees it: at most ``maximumBytes`` and valid UTF-8. Errors are one line,
/// `path:line:column: message` where the parser knows the place. Port names of `.fbp` files are lower-cased, as
/// msgflo's parser does. The graph is named by its `name` property, else by the file's base name.
package enum GraphFile {
    /// The largest graph file read (a 1,000-node graph is about 30 KB).
    package static let maximumBytes = 64 << 20

    /// Loads `path`. `warn` gets each warning (things the language silently drops), as `path:line:column: warning`.
    /// `requireProcesses` refuses a graph without processes (the tools would have nothing to do; an empty or
    /// comment-only file is more likely the wrong file than a wish).
    package static func load(_ path: String, warn: (String) -> Void = { _ in },
                            requireProcesses: Bool = false) throws(MsgFloError) -> DesiredGraph {
        let text = try TextFile.read(path, what: "graph", limit: maximumBytes)
        let graph: FBPGraph
        do {
            if path.lowercased().hasSuffix(".fbp") {
                let result = try FBP.parse(text)
                for w in result.warnings { warn("\(path):\(w)") }
                graph = result.graph
            } else {
                graph = try FBPGraph(jsonText: text)
            }
        } catch let e as FBPError {
            throw MsgFloError(.invalidArgument, "\(path):\(e.location == nil ? " " : "")\(e)")
        } catch {
            throw MsgFloError(.invalidArgument, "\(path): \(error)")
        }
        if requireProcesses && graph.processes.isEmpty {
            throw MsgFloError(.invalidArgument, "\(path): the graph has no processes")
        }
        let base = path.split(separator: "/").last.map(String.init) ?? path
        return DesiredGraph(fbp: graph, name: String(base.split(separator: ".").first ?? "main"))
    }
}

/// A text file read whole, or why it cannot be, in a few words: "cannot read WHAT 'PATH': no such file" (it is a
/// directory, permission denied, larger than N MiB, not UTF-8 text). The daemon's graph and the tools' files
/// (definitions, payloads) are read through it.
package enum TextFile {
    /// Why `path` cannot be opened, in a few words.
    package static func reason(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return "unreadable"
    }

    /// The file's bytes, at most `limit` of them (nil: no limit).
    package static func bytes(_ path: String, what: String, limit: Int? = nil) throws(MsgFloError) -> Data {
        func failure(_ why: String) -> MsgFloError { MsgFloError(.notFound, "cannot read \(what) '\(path)': \(why)") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw failure("it is a directory")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw failure(reason(path)) }
        defer { try? handle.close() }
        // One byte more than allowed tells a file at the limit from a larger one without trusting its size (a pipe
        // or a file that grows has none).
        let data: Data
        do {
            data = try (limit.map { try handle.read(upToCount: $0 + 1) } ?? handle.readToEnd()) ?? Data()
        } catch { throw failure("unreadable") }
        if let limit, data.count > limit { throw failure("larger than \(limit >> 20) MiB") }
        return data
    }

    /// The file's text (valid UTF-8), at most `limit` bytes.
    package static func read(_ path: String, what: String, limit: Int? = nil) throws(MsgFloError) -> String {
        let data = try bytes(path, what: what, limit: limit)
        guard let text = String(validating: data, as: UTF8.self) else {
            throw MsgFloError(.notFound, "cannot read \(what) '\(path)': not UTF-8 text")
        }
        return text
    }
}
