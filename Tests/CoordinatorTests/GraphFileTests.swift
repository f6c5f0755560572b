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

    /// The one loader checks the file before the parser sees it, and says what is wrong with it in one line.
    @Test func filesThatAreNotGraphTextAreRefusedByName() throws {
        let invalid = try write("", ext: "fbp")
        defer { try? FileManager.default.removeItem(atPath: invalid) }
        try Data([0x61, 0x20, 0x4F, 0x55, 0x54, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: invalid))
        #expect(throws: MsgFloError.self) { try GraphFile.load(invalid) }
        do { _ = try GraphFile.load(invalid) } catch { #expect(error.message == "cannot read graph '\(invalid)': not UTF-8 text") }

        let big = try write("", ext: "json")
        defer { try? FileManager.default.removeItem(atPath: big) }
        let handle = try #require(FileHandle(forWritingAtPath: big))
        try handle.truncate(atOffset: UInt64(GraphFile.maximumBytes + 1))   // sparse: no 64 MiB written
        try handle.close()
        do { _ = try GraphFile.load(big); Issue.record("no error") } catch {
            #expect(error.message == "cannot read graph '\(big)': larger than 64 MiB")
        }

        let folder = FileManager.default.temporaryDirectory.path
        do { _ = try GraphFile.load(folder); Issue.record("no error") } catch {
            #expect(error.message == "cannot read graph '\(folder)': it is a directory")
        }
        do { _ = try GraphFile.load("/nonexistent/g.fbp"); Issue.record("no error") } catch {
            #expect(error.message == "cannot read graph '/nonexistent/g.fbp': no such file")
            #expect(error.code == .notFound)
        }
    }

    @Test func warningsEmptyGraphsAndTheGraphsName() throws {
        let path = try write("# only a comment\n", ext: "FBP")   // the suffix in any case is .fbp
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = try GraphFile.load(path)
        #expect(g.roles.isEmpty)
        #expect(g.name == String(path.split(separator: "/").last!.split(separator: ".").first!))
        do { _ = try GraphFile.load(path, requireProcesses: true); Issue.record("no error") } catch {
            #expect(error.message == "\(path): the graph has no processes")
        }

        // A warning (an array index too large to keep) goes to the caller's `warn`, prefixed with the file.
        let warned = try write("IN[99999999999999999999] a(Repeat) OUT -> IN b(Repeat)\n", ext: "fbp")
        defer { try? FileManager.default.removeItem(atPath: warned) }
        var warnings: [String] = []
        let w = try GraphFile.load(warned, warn: { warnings.append($0) }, requireProcesses: true)
        #expect(w.roles == ["a", "b"])
        #expect(warnings.count == 1 && warnings.allSatisfy { $0.hasPrefix("\(warned):") }, "\(warnings)")
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
