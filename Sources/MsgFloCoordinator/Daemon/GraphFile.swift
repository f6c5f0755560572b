import Foundation
import FBP
import MsgFlo

/// Reads the graph given with `--graph`: `.fbp` through the FBP parser, anything else as the JSON graph format.
public enum GraphFile {
    public static func load(_ path: String) throws(MsgFloError) -> DesiredGraph {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw MsgFloError(.notFound, "cannot read graph \(path): \(LibraryFiles.reason(error))")
        }
        let text = String(decoding: data, as: UTF8.self)
        do {
            let graph = path.lowercased().hasSuffix(".fbp") ? try FBP.parse(text).graph : try FBPGraph(jsonText: text)
            let base = (path.split(separator: "/").last.map(String.init) ?? path)
            return DesiredGraph(fbp: graph, name: String(base.split(separator: ".").first ?? "main"))
        } catch let e as FBPError {
            throw MsgFloError(.invalidArgument, "\(path):\(e.description)")
        } catch {
            throw MsgFloError(.invalidArgument, "\(path): \(error)")
        }
    }
}
