import Testing
import TestSupport
@testable import FBP
import MsgFlo

/// The shared conformance folder: `$MSGFLO_SHARED_DIR/conformance/fbp`, else
/// `<package root>/../shared/conformance/fbp`. Tests fail (never skip) when it is missing.
enum Shared {
    static var root: String {
        if let env = getenv("MSGFLO_SHARED_DIR") { return String(cString: env) }
        // #filePath = <root>/Tests/FBPTests/ConformanceTests.swift
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/../shared"
    }
    static var fbpDir: String { root + "/conformance/fbp" }

    static func read(_ path: String) -> String? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Case ids (NNN) that have an NNN.fbp file.
    static func caseIDs() -> [String] {
        var ids: [String] = []
        for i in 1...999 {
            let id = i < 10 ? "00\(i)" : i < 100 ? "0\(i)" : "\(i)"
            if exists("\(fbpDir)/\(id).fbp") { ids.append(id) }
        }
        return ids
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ConformanceCase: CustomTestStringConvertible, Sendable {
    let id: String
    var testDescription: String { id }
    var input: String { Shared.read("\(Shared.fbpDir)/\(id).fbp")! }
    var options: ParseOptions {
        let text = Shared.read("\(Shared.fbpDir)/\(id).options.json") ?? "{}"
        let v = try? JSONValue.parse(text)
        var o = ParseOptions()
        if case .bool(let b)? = v?["caseSensitive"] { o.caseSensitive = b }
        return o
    }
    var expectedJSON: JSONValue? { Shared.read("\(Shared.fbpDir)/\(id).json").flatMap { try? JSONValue.parse($0) } }
    var expectedError: String? { Shared.read("\(Shared.fbpDir)/\(id).error.txt") }
}

let conformanceCases: [ConformanceCase] = Shared.caseIDs().map { ConformanceCase(id: $0) }

@Suite("Conformance (shared/conformance/fbp)", .offThePool)
struct ConformanceTests {
    @Test("the shared conformance folder is present and complete")
    func folderPresent() {
        #expect(Shared.exists(Shared.fbpDir), "missing \(Shared.fbpDir): set MSGFLO_SHARED_DIR or check out shared/ next to the package")
        #expect(conformanceCases.count >= 43, "expected at least 43 cases in \(Shared.fbpDir), found \(conformanceCases.count)")
    }

    @Test("parse matches the reference", arguments: conformanceCases)
    func parse(_ c: ConformanceCase) throws {
        if let err = c.expectedError {
            let first = err.split(separator: "\n").first.map(String.init) ?? ""
            do {
                _ = try FBP.parse(c.input, options: c.options)
                Issue.record("\(c.id): expected an error: \(first)")
            } catch let e as FBPError {
                var input = c.input
                #expect(throws: e) { try input.withUTF8 { _ = try FBP.read(utf8: $0, options: c.options) } }
                #expect(e.location != nil, "\(c.id): error without a location")
                if first.hasPrefix("SyntaxError") {
                    #expect(e.kind == .syntax)
                    // our message is the reference's PEG.js message
                    #expect(first == "SyntaxError: " + e.message)
                    if let locLine = err.split(separator: "\n").first(where: { $0.hasPrefix("location:") }) {
                        #expect(locLine.contains("line \(e.location!.line), column \(e.location!.column)"))
                    }
                } else {
                    let msg = String(first.dropFirst("Error: ".count))
                    #expect(e.kind == .validation)
                    #expect(e.message.contains(msg), "\(c.id): \(e.message) does not contain \(msg)")
                }
            }
            return
        }
        let result = try FBP.parse(c.input, options: c.options)
        let expected = try #require(c.expectedJSON, "\(c.id).json missing or not JSON")
        #expect(result.graph.json == expected, "\(c.id): got \(result.graph.jsonText())")
        // the JSON text we write reads back as the same value
        #expect(try JSONValue.parse(result.graph.jsonText()) == expected)
        // and as the same graph
        #expect(try Graph(jsonText: result.graph.jsonText()) == result.graph)
        // the JSON written without building the graph is the same text
        #expect(directJSON(c.input, c.options) == result.graph.jsonBytes())
    }

    @Test("parse → serialize → parse is the identity", arguments: conformanceCases)
    func roundTrip(_ c: ConformanceCase) throws {
        guard c.expectedError == nil else { return }
        let g = try FBP.parse(c.input, options: c.options).graph
        let text = FBP.serialize(g).text
        let again = try FBP.parse(text, options: ParseOptions(caseSensitive: g.caseSensitive)).graph
        #expect(again == g, "\(c.id): serialized as\n\(text)")
        #expect(again.processes.keys == g.processes.keys, "\(c.id): process order changed")
        // and serializing again gives the same text
        #expect(FBP.serialize(again).text == text)
    }

    static let serializeCases = ["S01", "S02", "S03", "S04", "S05", "S06"]

    @Test("serializer: byte-exact with the reference where it is right", arguments: ["S02", "S04", "S05", "S06"])
    func serializeExact(_ id: String) throws {
        let dir = Shared.fbpDir + "/serialize"
        let input = try #require(Shared.read("\(dir)/\(id).input.json"))
        let expected = try #require(Shared.read("\(dir)/\(id).expected.fbp"))
        let g = try Graph(jsonText: input)
        #expect(FBP.serialize(g).text == expected)
    }

    @Test("serializer: round trips of the expected texts", arguments: serializeCases)
    func serializeRoundTrip(_ id: String) throws {
        let dir = Shared.fbpDir + "/serialize"
        let text = try #require(Shared.read("\(dir)/\(id).expected.fbp"))
        let input = try Graph(jsonText: try #require(Shared.read("\(dir)/\(id).input.json")))
        let options = ParseOptions(caseSensitive: input.caseSensitive)
        let g = try FBP.parse(text, options: options).graph
        let g2 = try FBP.parse(FBP.serialize(g).text, options: options).graph
        #expect(g2 == g)
        // serializing the input graph keeps every process and connection (the reference merges
        // S03's nodes by label and drops S01's indexes)
        let fromInput = try FBP.parse(FBP.serialize(input).text, options: options).graph
        #expect(fromInput.processes.count == input.processes.count)
        #expect(fromInput.connections.count == input.connections.count)
        #expect(fromInput.connections.map { $0.tgt.index } == input.connections.map { $0.tgt.index })
    }

    @Test("S01: indexes survive, unlike in the reference")
    func s01Indexes() throws {
        let dir = Shared.fbpDir + "/serialize"
        let g = try Graph(jsonText: try #require(Shared.read("\(dir)/S01.input.json")))
        let text = FBP.serialize(g).text
        #expect(text.contains("GreetUser OUT[0] -> IN[0] WriteResponse(HTTP/WriteResponse)"))
        #expect(try FBP.parse(text, options: ParseOptions(caseSensitive: true)).graph == g)
    }
}
