import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import TestSupport
@testable import FBP

private func layout(_ s: String) throws -> GraphLayout {
    GraphLayout(graph: try FBP.parse(s, options: ParseOptions(caseSensitive: true, validateContents: false)).graph)
}

/// Parses an SVG document with Foundation's XML parser; nil when it is not well-formed.
private func xmlElements(_ svg: String) -> [(name: String, attributes: [String: String])]? {
    final class Collector: NSObject, XMLParserDelegate {
        var elements: [(name: String, attributes: [String: String])] = []
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elements.append((name, attributes))
        }
    }
    let parser = XMLParser(data: Data(svg.utf8))
    let collector = Collector()
    parser.delegate = collector
    return parser.parse() ? collector.elements : nil
}

@Suite("Layered layout and SVG (msgflo-graph --svg, the live view)", .offThePool)
struct LayoutTests {
    @Test func chainGoesLeftToRight() throws {
        let l = try layout("a(A) OUT -> IN b(B) OUT -> IN c(C)\n'x' -> IN a")
        #expect(l.nodes.map(\.id) == ["a", "b", "c"])
        #expect(l.nodes.map(\.layer) == [0, 1, 2])
        let a = try #require(l.node("a")), b = try #require(l.node("b")), c = try #require(l.node("c"))
        #expect(a.x + a.width < b.x && b.x + b.width < c.x)
        #expect(l.edges.count == 2 && l.edges.allSatisfy { !$0.backward })
        // Each edge starts at the source's outport anchor and ends at the target's inport anchor.
        #expect(l.edges[0].curve.first == a.outports[0].anchor)
        #expect(l.edges[0].curve.last == b.inports.first { $0.name == "IN" }?.anchor)
        #expect(l.initials.count == 1 && l.initials[0].text == "'x'")
        #expect(l.width >= c.x + c.width && l.height >= c.y + c.height)
    }

    @Test func fanOutStacksALayer() throws {
        let l = try layout("s(S) OUT -> IN a(A)\ns OUT -> IN b(B)\ns OUT -> IN c(C)")
        let layer1 = l.nodes.filter { $0.layer == 1 }.sorted { $0.rank < $1.rank }
        #expect(layer1.map(\.id) == ["a", "b", "c"])
        for (u, v) in zip(layer1, layer1.dropFirst()) { #expect(u.y + u.height <= v.y) }   // no overlap
        // Same column: the same x for boxes of equal width.
        #expect(Set(layer1.map(\.x)).count == 1)
    }

    @Test func cyclesAreBrokenAndMarked() throws {
        let l = try layout("a(A) OUT -> IN b(B) OUT -> IN c(C) OUT -> IN a\nc LOOP -> IN c")
        #expect(l.nodes.map(\.layer) == [0, 1, 2])
        #expect(l.edges.filter(\.backward).count == 2)   // c -> a and c -> c
    }

    @Test func orderingFollowsNeighboursToAvoidCrossings() throws {
        // a feeds y, b feeds x: in layer 1, y should come before x (barycenters), though x was declared first.
        let l = try layout("x(X)\ny(Y)\na(A) OUT -> IN y\nb(B) OUT -> IN x")
        let xNode = try #require(l.node("x")), yNode = try #require(l.node("y"))
        #expect(yNode.rank < xNode.rank)
    }

    @Test func addingANodeKeepsTheOthersInPlace() throws {
        let before = try layout("a(A) OUT -> IN b(B) OUT -> IN c(C)")
        let after = try layout("a(A) OUT -> IN b(B) OUT -> IN c(C)\nc OUT -> IN d(D)")
        for n in before.nodes {
            let m = try #require(after.node(n.id))
            #expect((m.layer, m.rank, m.x, m.y) == (n.layer, n.rank, n.x, n.y))
        }
        #expect(after.node("d")?.layer == 3)
    }

    @Test func deterministic() throws {
        let text = (0..<60).map { "n\($0)(C) OUT -> IN n\(($0 * 7 + 3) % 60)" }.joined(separator: "\n")
        let a = try layout(text), b = try layout(text)
        #expect(a.nodes == b.nodes && a.edges == b.edges)
        // No two boxes overlap.
        for (i, u) in a.nodes.enumerated() {
            for v in a.nodes[(i + 1)...] {
                let apart = u.x + u.width <= v.x || v.x + v.width <= u.x || u.y + u.height <= v.y || v.y + v.height <= u.y
                #expect(apart, "\(u.id) overlaps \(v.id)")
            }
        }
    }

    @Test func exportedPortsAndUndeclaredProcesses() throws {
        let l = try layout("INPORT=a.IN:START\nOUTPORT=b.OUT:RESULT\na(A) OUT -> IN b(B)\nb OUT -> IN ghost")
        #expect(l.node("a")?.inports.first?.exportedAs == "START")
        #expect(l.node("b")?.outports.first?.exportedAs == "RESULT")
        #expect(l.node("ghost")?.declared == false)
        let svg = try FBP.parse("INPORT=a.IN:START\na(A) OUT -> IN b(B)\nb OUT -> IN ghost", options: ParseOptions(validateContents: false)).graph.svg(title: "t")
        let elements = try #require(xmlElements(svg))
        #expect(elements.contains { $0.name == "g" && $0.attributes["class"] == "node undeclared" && $0.attributes["data-id"] == "ghost" })
        #expect(elements.contains { $0.name == "g" && $0.attributes["class"] == "port in exported" })
    }

    @Test func svgIsWellFormedForHostileNames() throws {
        var g = Graph()
        let evil = "</text><script>alert(1)</script>&\u{1b}[31m\"'\u{0}\u{7}\n\u{FFFE}" + String(repeating: "é", count: 5_000)
        g.processes[evil] = Process(component: evil)
        g.processes["b"] = Process(component: "B")
        g.connections.append(Connection(src: PortRef(process: evil, port: evil), tgt: PortRef(process: "b", port: "in")))
        g.connections.append(Connection(data: .string(evil), tgt: PortRef(process: evil, port: "x")))
        let svg = g.svg(title: evil)
        let elements = try #require(xmlElements(svg), "not well-formed XML")
        #expect(!elements.contains { $0.name == "script" })
        #expect(!svg.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        #expect(svg.utf8.count < 40_000, "names are capped for display")
        #expect(svg.contains("\\u001b[31m"))
    }

    @Test func emptyGraph() throws {
        let svg = Graph().svg()
        #expect(xmlElements(svg) != nil)
        #expect(GraphLayout(graph: Graph()).nodes.isEmpty)
    }

    @Test func largeGraphLaysOut() throws {
        // 2,000 processes in 40 chains with cross links: finishes (O((V+E) log V) per sweep) with every node placed.
        var lines: [String] = []
        for c in 0..<40 {
            for i in 0..<49 { lines.append("c\(c)n\(i)(R) OUT -> IN c\(c)n\(i + 1)(R)") }
            lines.append("c\(c)n10 X -> IN c\((c + 1) % 40)n20")
        }
        let l = try layout(lines.joined(separator: "\n"))
        #expect(l.nodes.count == 2_000)
        #expect(l.nodes.map(\.layer).max() == 49)
        #expect(xmlElements(SVGWriter.document(l, title: "big")) != nil)
    }

    @Test func displayTextEscapesAndCuts() {
        #expect(GraphLayout.displayText("a\nb\u{1b}\u{202E}", max: 32) == "a\\nb\\u001b\\u202e")
        #expect(GraphLayout.displayText(String(repeating: "x", count: 40), max: 10) == String(repeating: "x", count: 10) + "…")
        #expect(GraphLayout.displayText("short", max: 10) == "short")
    }
}
