import Foundation
import MsgFlo

/// Reads the graph given with `--graph`: `.fbp` through the FBP parser, anything else as the JSON graph format.
public enum GraphFile {
    public static func load(_ path: String) throws(MsgFloError) -> DesiredGraph {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw MsgFloError(.notFound, "cannot read graph \(path): \(LibraryFiles.reason(error))")
        }
        let text = String(decoding: data, as: UTF8.self)
        if path.lowercased().hasSuffix(".fbp") { return try parseFBP(text, path: path) }
        do { return try DesiredGraph(json: JSONValue(parsing: text), source: path) } catch {
            throw MsgFloError(.invalidArgument, error.message.hasPrefix(path) ? error.message : "\(path): \(error.message)")
        }
    }

    static func parseFBP(_ text: String, path: String) throws(MsgFloError) -> DesiredGraph {
        throw MsgFloError(.unsupported, "\(path): .fbp graphs need the FBP parser, which is not merged yet; use the JSON form")
    }
}
