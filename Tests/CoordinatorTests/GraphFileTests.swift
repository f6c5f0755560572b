import Foundation
import MsgFlo
import Testing
@testable import MsgFloCoordinator

@Suite struct GraphFileTests {
    func write(_ text: String, ext: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("g-\(UInt32.random(in: 0...UInt32.max)).\(ext)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func jsonGraph() throws {
        let path = try write("""
        {"properties": {"name": "demo"},
         "processes": {"a": {"component": "Repeat"}, "b": {"component": "Repeat", "metadata": {"x": 1}}},
         "connections": [{"src": {"process": "a", "port": "out"}, "tgt": {"process": "b", "port": "in"}},
                         {"data": "hello", "tgt": {"process": "a", "port": "in"}}],
         "inports": {"IN": {"process": "a", "port": "in"}}, "outports": {"OUT": {"process": "b", "port": "out"}}}
        """, ext: "json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = try GraphFile.load(path)
        #expect(g.name == "demo")
        #expect(g.roles == ["a", "b"])
        #expect(g.edges == [.init(.init("a", "out"), .init("b", "in"))])
        #expect(g.initials.map(\.data) == ["hello"])
        #expect(g.inports == [.init("IN", .init("a", "in"))])
        #expect(g.outports == [.init("OUT", .init("b", "out"))])
    }

    @Test func fbpGraph() throws {
        let path = try write("""
        INPORT=a.IN:IN
        OUTPORT=b.OUT:OUT
        '8080' -> PORT a(examples/Repeat)
        a OUT -> IN b(Repeat)
        b OUT -> IN rr(msgflo/RoundRobin) OUT -> IN w(Work)
        """, ext: "fbp")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = try GraphFile.load(path)
        #expect(g.roles == ["a", "b", "rr", "w"])
        #expect(g.nodes["a"]?.component == "examples/Repeat")
        #expect(g.edges.count == 3)
        #expect(g.edges[0] == .init(.init("a", "out"), .init("b", "in")))   // ports lower-cased, as msgflo's parser does
        #expect(g.initials.map(\.data) == ["8080"])
        #expect(g.initials[0].tgt == .init("a", "port"))
        #expect(g.inports == [.init("in", .init("a", "in"))])   // fbp lower-cases public names too
        #expect(!g.isParticipant("rr"))
    }

    @Test func fbpSyntaxErrorHasLineAndColumn() throws {
        let path = try write("a OUT -> \n", ext: "fbp")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do { _ = try GraphFile.load(path); Issue.record("no error") } catch {
            #expect(error.message.hasPrefix("\(path):"))
            #expect(!error.message.contains("\n"))
            #expect(error.message.contains(":1:") || error.message.contains(":2:"))
        }
    }

    @Test func badGraphsAreOneLineErrors() throws {
        for text in ["{", #"{"processes": []}"#, #"{"connections": {}}"#] {
            let path = try write(text, ext: "json")
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                _ = try GraphFile.load(path)
                Issue.record("no error for \(text)")
            } catch {
                #expect(!error.message.contains("\n"))
                #expect(error.message.contains(path))
            }
        }
        #expect(throws: MsgFloError.self) { try GraphFile.load("/nonexistent/graph.json") }
    }

    @Test func daemonStartsWithoutLibraryFileWhenDefaulted() throws {
        var config = DaemonConfiguration(broker: BrokerURL(scheme: .amqp, host: "localhost"))
        config.libraryPath = "/nonexistent/package.json"
        let (_, options) = try config.load(logger: .init(label: "t"))
        #expect(options.library == nil)
        config.libraryGiven = true
        #expect(throws: MsgFloError.self) { try config.load(logger: .init(label: "t")) }
    }
}
