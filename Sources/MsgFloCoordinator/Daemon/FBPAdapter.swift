import FBP
import MsgFlo

extension DesiredGraph {
    /// The desired graph of an FBP graph (parsed from .fbp or read from the JSON form): processes become nodes,
    /// connections edges or IIPs (each in graph order), exported ports keep their public names. The coordinator and
    /// the tools both read graphs through this.
    package init(fbp graph: FBPGraph, name: String = "main") {
        self.init(name: graph.properties?["name"]?.stringValue ?? name)
        for (role, process) in graph.processes {
            setNode(role, Node(component: process.component, metadata: process.metadata.map { Self.convert(.object($0)) }))
        }
        for c in graph.connections {
            let tgt = Endpoint(c.tgt.process, c.tgt.port)
            let metadata = c.metadata.map { Self.convert(.object($0)) }
            if let src = c.src {
                edges.append(Edge(Endpoint(src.process, src.port), tgt, metadata: metadata))
            } else if let data = c.data {
                initials.append(Initial(Self.convert(data), to: tgt, metadata: metadata))
            }
        }
        inports = graph.inports.map { Exported($0.0, Endpoint($0.1.process, $0.1.port)) }
        outports = graph.outports.map { Exported($0.0, Endpoint($0.1.process, $0.1.port)) }
    }

    /// FBP's JSON value (ordered, numbers as doubles) as the project's.
    static func convert(_ v: FBPJSONValue) -> MsgFlo.JSONValue {
        switch v {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let d): return d.rounded() == d && abs(d) < 9e15 ? .int(Int(d)) : .double(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(convert))
        case .object(let o):
            var out: [String: MsgFlo.JSONValue] = [:]
            for (k, x) in o { out[k] = convert(x) }
            return .object(out)
        }
    }
}
