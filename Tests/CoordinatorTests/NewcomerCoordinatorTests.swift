import Foundation
import Logging
import MsgFlo
import Synchronization
import Testing
@testable import MsgFloCoordinator

/// The surprises of issue 16: library paths, library files in the component directory, component mismatches,
/// plurals in the log.
@Suite struct NewcomerCoordinatorTests {
    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("newcomer-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    @Test("a relative program in a library file is found from the file's folder; bare names and absolute paths stay")
    func relativeCommandsResolveAgainstTheLibraryFolder() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sub = dir.appendingPathComponent("my lib")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        try """
        {"components": {"A": "../bin/a #ROLE", "B": "./b --x #ROLE", "C": "c-on-path #ROLE", "D": "/opt/d #ROLE",
                        "E": "#X #ROLE"}, "variables": {"X": "tool"}}
        """.write(to: sub.appendingPathComponent("library.json"), atomically: true, encoding: .utf8)
        let lib = try ComponentLibrary.load(path: sub.appendingPathComponent("library.json").path)
        let root = URL(fileURLWithPath: dir.path).standardizedFileURL.path
        #expect(try lib.command(component: "A", role: "r") == "\(root)/bin/a r")
        #expect(try lib.command(component: "B", role: "r") == "'\(root)/my lib/b' --x r")   // quoted: a space
        #expect(try lib.command(component: "C", role: "r") == "c-on-path r")
        #expect(try lib.command(component: "D", role: "r") == "/opt/d r")
        #expect(try lib.command(component: "E", role: "r") == "tool r")
        // The quoted path splits back into one word.
        #expect(try ShellWords.split(lib.command(component: "B", role: "r")) == ["\(root)/my lib/b", "--x", "r"])
        // A library given as text (no file) keeps its commands as they are.
        let inline = try ComponentLibrary(config: LibraryConfig(json: #"{"components": {"A": "../bin/a #ROLE"}}"#))
        #expect(try inline.command(component: "A", role: "r") == "../bin/a r")
    }

    @Test("the component directory never lists library files: the library in use, package.json, any with components")
    func componentDirectorySkipsLibraryFiles() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lib = dir.appendingPathComponent("library.json")
        try #"{"components": {"Repeat": "repeat #ROLE"}}"#.write(to: lib, atomically: true, encoding: .utf8)
        try #"{"name": "x", "msgflo": {}}"#.write(to: dir.appendingPathComponent("package.json"), atomically: true, encoding: .utf8)
        try #"{"components": {}}"#.write(to: dir.appendingPathComponent("other-library.json"), atomically: true, encoding: .utf8)
        try #"{"processes": {}, "connections": []}"#.write(to: dir.appendingPathComponent("Graph.json"), atomically: true, encoding: .utf8)
        try "component: Device\n".write(to: dir.appendingPathComponent("Device.yml"), atomically: true, encoding: .utf8)
        let library = try ComponentLibrary.load(path: lib.path, componentDirectory: dir.path)
        #expect(Set(library.names) == ["Graph", "Device", "Repeat"], "\(library.names)")
    }

    @Test("plurals: 1 edge, 2 edges; long lists are cut")
    func plurals() {
        #expect(Plural.count(1, "edge") == "1 edge")
        #expect(Plural.count(0, "edge") == "0 edges")
        #expect(Plural.count(2, "IIP") == "2 IIPs")
        #expect(Plural.list(["a", "b"]) == "a, b")
        #expect(Plural.list((1...12).map(String.init)) == "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more")
        #expect(Coordinator.sameComponent("ns/Repeat", "Repeat"))
        #expect(!Coordinator.sameComponent("Uppercase", "Repeat"))
    }

    @Test("a participant whose component differs from its node's: one warning naming both; the start-up summary")
    func componentMismatchWarns() async throws {
        let lines = LogLines()
        let logger = Logger(label: "test") { _ in lines }
        let broker = InMemoryBroker()
        let t = InMemoryTransport(broker: broker)
        try await t.connect()
        typealias E = DesiredGraph.Endpoint
        let graph = DesiredGraph(nodes: [("shout", .init(component: "Shout")), ("rep", .init(component: "ns/Repeat"))],
                                 edges: [.init(E("rep", "out"), E("shout", "in"))], initials: [])
        var options = CoordinatorOptions()
        options.tick = .milliseconds(20)
        let c = Coordinator(transport: t, graph: graph, options: options, logger: logger)
        let task = Task { try await c.run() }
        defer { task.cancel() }
        for _ in 0..<500 where !lines.all.contains(where: { $0.contains("msgflo running on") }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        func participant(_ role: String, _ component: String) -> ParticipantDefinition {
            ParticipantDefinition(id: "\(role)-00000001", role: role, component: component,
                                  inports: [PortDefinition(id: "in", queue: "\(role).IN")],
                                  outports: [PortDefinition(id: "out", queue: "\(role).OUT")])
        }
        await c.handle([.success(participant("shout", "Uppercase")), .success(participant("rep", "Repeat"))])
        let warnings = lines.all.filter { $0.contains("is component") }
        #expect(warnings == ["participant shout-00000001 (role shout) is component Uppercase, but the graph's node shout is Shout; wiring it anyway"])
        let summary = try #require(lines.all.first { $0.contains("msgflo running on") })
        #expect(summary.contains("(2 nodes, 1 edge, 0 IIPs)"), "\(summary)")
        #expect(summary.contains("pending until their participants appear: rep, shout"), "\(summary)")
        #expect(!lines.all.contains { $0.contains("node rep pending") })
        await t.close()
    }
}

/// A log handler that keeps the lines (info and up).
final class LogLines: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .info }
        set {}
    }
    subscript(metadataKey _: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }
    func log(event: LogEvent) {
        if event.level >= .info { lines.withLock { $0.append("\(event.message)") } }
    }
}
