import FBP
import MsgFlo

extension DesiredGraph {
    /// The desired graph of an FBP graph (parsed from .fbp or read from the JSON form): processes become nodes,
    /// connections edges or IIPs (each in graph order), exported ports keep their public names. The coordinator and
    /// the tools both read graphs through this.
    package init(fbp graph: FBPGraph, name: String = "main") {
        self.init(name: graph.properties?["name"]?.stringValue ?? name)
        for (role, process) in graph.processes {
            setNode(role, Node(component: process.component, metadata: process.metadata.map { .object($0) }))
        }
        for c in graph.connections {
            let tgt = Endpoint(c.tgt.process, c.tgt.port)
            let metadata = c.metadata.map { JSONValue.object($0) }
            if let src = c.src {
                edges.append(Edge(Endpoint(src.process, src.port), tgt, metadata: metadata))
            } else if let data = c.data {
                initials.append(Initial(data, to: tgt, metadata: metadata))
            }
        }
        inports = graph.inports.map { Exported($0.0, Endpoint($0.1.process, $0.1.port)) }
        outports = graph.outports.map { Exported($0.0, Endpoint($0.1.process, $0.1.port)) }
    }
}
