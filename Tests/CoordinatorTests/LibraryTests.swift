import Foundation
import MsgFlo
import Testing
@testable import MsgFloCoordinator

/// msgflo's spec/library.coffee cases, plus the lookup and order rules of src/library.coffee.
@Suite struct LibraryTests {
    static let nontrivial = """
    {
      "msgflo": {
        "variables": {
          "PREFETCH": "--prefetch=1",
          "NOFLO": "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT",
          "DEAD": "--deadletter in"
        },
        "components": {
          "api/ConvertDocument": "#NOFLO #PREFETCH --deadletter=in",
          "api/SendMessageToUser": "#NOFLO --prefetch=10",
          "api/PropagateItem": "#NOFLO #PREFETCH --deadletter propagate,unpropagate",
          "api/Router": "#NOFLO #PREFETCH #DEAD"
        }
      }
    }
    """

    @Test func variablesAreExpanded() throws {
        let lib = try ComponentLibrary(config: LibraryConfig(json: Self.nontrivial))
        let commands = Dictionary(uniqueKeysWithValues: lib.names.map { ($0, lib.components[$0]!.command) })
        #expect(commands == [
            "api/ConvertDocument": "noflo-runtime-msgflo --name #ROLE --graph api/ConvertDocument --prefetch=1 --deadletter=in",
            "api/SendMessageToUser": "noflo-runtime-msgflo --name #ROLE --graph api/SendMessageToUser --prefetch=10",
            "api/PropagateItem": "noflo-runtime-msgflo --name #ROLE --graph api/PropagateItem --prefetch=1 --deadletter propagate,unpropagate",
            "api/Router": "noflo-runtime-msgflo --name #ROLE --graph api/Router --prefetch=1 --deadletter in",
        ])
        #expect(lib.names == ["api/ConvertDocument", "api/SendMessageToUser", "api/PropagateItem", "api/Router"])
    }

    @Test func variableOrderMatters() throws {
        // B's value brings #A in after A was already replaced: it stays (msgflo expands in key order, once).
        let lib = try ComponentLibrary(config: LibraryConfig(json: """
            {"variables": {"A": "a", "B": "#A-b"}, "components": {"X": "#B #A"}}
            """))
        #expect(lib.components["X"]!.command == "#A-b a")
        let lib2 = try ComponentLibrary(config: LibraryConfig(json: """
            {"variables": {"B": "#A-b", "A": "a"}, "components": {"X": "#B #A"}}
            """))
        #expect(lib2.components["X"]!.command == "a-b a")
    }

    @Test func variablesComeBeforeComponentMarkers() throws {
        // A variable may use #COMPONENT and #COMPONENTNAME; #COMPONENTNAME is replaced before #COMPONENT, so
        // the longer marker is not eaten by the shorter one.
        let lib = try ComponentLibrary(config: LibraryConfig(json: """
            {"variables": {"RUN": "run #COMPONENTNAME of #COMPONENT as #ROLE"}, "components": {"ns/Foo": "#RUN"}}
            """))
        #expect(try lib.command(component: "ns/Foo", role: "r") == "run Foo of ns/Foo as r")
    }

    @Test func roleIsReplaced() throws {
        let lib = try ComponentLibrary(config: LibraryConfig(json: """
            {"components": {"project/Foo": "msgflo-nodejs --name #ROLE --file api/#COMPONENTNAME.js --option 1"}}
            """))
        #expect(try lib.command(component: "project/Foo", role: "myrole")
                == "msgflo-nodejs --name myrole --file api/Foo.js --option 1")
    }

    @Test func iipsAreReplaced() throws {
        let lib = try ComponentLibrary(config: LibraryConfig(json: """
            {"components": {"project/Foo": "msgflo-nodejs --name #ROLE --file api/#COMPONENTNAME.js --option 1 --iips #IIPS"}}
            """))
        #expect(try lib.command(component: "project/Foo", role: "myrole", iips: [("portA", "valueA"), ("portB", 3.14)])
                == #"msgflo-nodejs --name myrole --file api/Foo.js --option 1 --iips '{"portA":"valueA","portB":3.14}'"#)
        #expect(try lib.command(component: "project/Foo", role: "r").hasSuffix("--iips '{}'"))
    }

    @Test func missingComponentError() throws {
        let lib = try ComponentLibrary(config: LibraryConfig(json: #"{"components": {"imgflo-server/Other": "x"}}"#))
        #expect(throws: MsgFloError.self) { try lib.command(component: "imgflo-server/ProcessImage", role: "imgflo_worker") }
        do { _ = try lib.command(component: "imgflo-server/ProcessImage", role: "imgflo_worker") } catch {
            #expect(error.message == "No component imgflo-server/ProcessImage defined for role imgflo_worker")
        }
    }

    @Test func wholeFileOrMsgfloKey() throws {
        let whole = try LibraryConfig(json: #"{"components": {"A": "a #ROLE"}}"#)
        #expect(whole.components.map(\.name) == ["A"])
        // With a msgflo key, top-level components are not used.
        let keyed = try LibraryConfig(json: #"{"name": "pkg", "components": {"A": "a"}, "msgflo": {"components": {"B": "b"}}}"#)
        #expect(keyed.components.map(\.name) == ["B"])
        #expect(keyed.namespace == "pkg")
        let ns = try LibraryConfig(json: #"{"name": "pkg", "msgflo": {"namespace": "mine"}, "repository": {"url": "git://x"}}"#)
        #expect(ns.namespace == "mine")
        #expect(ns.repository == "git://x")
    }

    @Test func defaultHandlersAndOverrides() throws {
        let c = try LibraryConfig(json: #"{"handlers": {".py": "python3 #FILENAME --role #ROLE"}}"#)
        #expect(c.handlers[".py"] == "python3 #FILENAME --role #ROLE")
        #expect(c.handlers[".yml"] == "msgflo-register --role #ROLE:#FILENAME")
        #expect(c.handlers[".fbp"] == "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS")
    }

    @Test func componentDirectoryWithDefaultHandlers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lib-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in ["participants.coffee", "ProduceFoo.coffee", "worker.py", "switch.yml", "Graph.fbp", "notes.txt", ".hidden"] {
            try Data().write(to: dir.appendingPathComponent(f))
        }
        let lib = try ComponentLibrary(config: LibraryConfig(json: Self.nontrivial), componentDirectory: dir.path)
        #expect(Set(lib.names).isSuperset(of: ["api/ConvertDocument", "api/Router", "participants", "worker", "switch", "Graph"]))
        #expect(lib.components["notes"] == nil)
        #expect(lib.components["worker"]!.command == "msgflo-python \(dir.path)/worker.py #ROLE")
        #expect(lib.components["worker"]!.language == "python")
        #expect(try lib.command(component: "switch", role: "s1") == "msgflo-register --role s1:\(dir.path)/switch.yml")
        #expect(try lib.command(component: "Graph", role: "g") == "noflo-runtime-msgflo --name g --graph Graph --iips '{}'")

        // A namespace (the package name) prefixes directory components; lookup finds them without it.
        let named = try ComponentLibrary(config: LibraryConfig(json: #"{"name": "default-msgflo-component-handlers"}"#),
                                         componentDirectory: dir.path)
        #expect(named.components["default-msgflo-component-handlers/ProduceFoo"] != nil)
        #expect(try named.command(component: "ProduceFoo", role: "foo")
                == "msgflo-nodejs --name foo \(dir.path)/ProduceFoo.coffee")
    }

    @Test func lookupWithoutNamespace() throws {
        let lib = try ComponentLibrary(config: LibraryConfig(json: #"{"components": {"Repeat": "repeat #ROLE"}}"#))
        #expect(try lib.command(component: "examples/Repeat", role: "r") == "repeat r")
        #expect(lib.component(named: "Nope") == nil)
    }

    @Test func badLibraryFilesAreOneLineErrors() throws {
        #expect(throws: MsgFloError.self) { try LibraryConfig(json: "{\"components\": ") }
        #expect(throws: MsgFloError.self) { try LibraryConfig(json: #"{"components": {"A": {"x": 1}}}"#) }
        #expect(throws: MsgFloError.self) { try LibraryConfig.load(path: "/nonexistent/package.json") }
        do { _ = try LibraryConfig.load(path: "/nonexistent/package.json") } catch {
            #expect(!error.message.contains("\n"))
            #expect(error.message.contains("/nonexistent/package.json"))
        }
    }

    @Test func pathHelpers() {
        #expect(LibraryFiles.join("./participants", "a.py") == "participants/a.py")
        #expect(LibraryFiles.join("participants/", "a.py") == "participants/a.py")
        #expect(LibraryFiles.join("/abs/dir", "x.js") == "/abs/dir/x.js")
        #expect(LibraryFiles.extensionName("a.tar.gz") == ".gz")
        #expect(LibraryFiles.extensionName(".yml") == "")
    }
}
