import Foundation
import Testing
import TestSupport

/// Callers ask a transport what it can do (`Transport.capabilities`), never which broker it talks to: a decision on
/// the URL's scheme belongs to the transports, to the one place that makes them, and to what is about the URL itself
/// before any transport exists (its default port, the name limits of each protocol). This test keeps it so.
@Suite struct SchemeBranchLintTests {
    /// Files (or folders, ending in `/`) under Sources/ that may look at the scheme, and why.
    static let allowed: [String: String] = [
        "MsgFloAMQP/": "the AMQP transport",
        "MsgFloMQTT/": "the MQTT transport",
        "MsgFloTransports/": "the one place that turns a URL into a transport",
        "MsgFlo/InMemoryTransport.swift": "a transport: its default capabilities follow its URL",
        "MsgFlo/BrokerURL.swift": "the URL itself: its scheme, default port and options",
        "MsgFlo/WireName.swift": "name limits per protocol, checked on URLs and names before any transport exists",
        "MsgFloTools/ManagementAPI.swift": "RabbitMQ's HTTP API: its own http:// URL, and whether a broker URL has one",
    ]

    struct Hit: CustomStringConvertible {
        var file: String
        var line: Int
        var text: String
        var description: String { "Sources/\(file):\(line): \(text)" }
    }

    /// The scheme decisions in `text`: `isAMQP`, `isMQTT`, or `.scheme` (a label made of `.scheme.rawValue` is
    /// not a decision). Comment lines are skipped.
    static func hits(in text: String, file: String) -> [Hit] {
        var out: [Hit] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("//") { continue }
            let code = line.components(separatedBy: " //").first!.replacingOccurrences(of: ".scheme.rawValue", with: "")
            if containsWord(code, "isAMQP") || containsWord(code, "isMQTT") || containsWord(code, ".scheme") {
                out.append(Hit(file: file, line: i + 1, text: line))
            }
        }
        return out
    }

    static func containsWord(_ text: String, _ word: String) -> Bool {
        var rest = text[...]
        while let r = rest.range(of: word) {
            let after = r.upperBound == rest.endIndex ? nil : rest[r.upperBound]
            let before = r.lowerBound == text.startIndex ? nil : text[text.index(before: r.lowerBound)]
            let ident: (Character?) -> Bool = { c in c.map { $0.isLetter || $0.isNumber || $0 == "_" } ?? false }
            if !ident(after) && (word.hasPrefix(".") || !ident(before)) { return true }
            rest = rest[r.upperBound...]
        }
        return false
    }

    static func sources() throws -> [(path: String, text: String)] {
        let root = TestBrokers.packageRoot.appendingPathComponent("Sources")
        let walker = try #require(FileManager.default.enumerator(atPath: root.path))
        var out: [(String, String)] = []
        while let p = walker.nextObject() as? String {
            guard p.hasSuffix(".swift") else { continue }
            out.append((p, try String(contentsOf: root.appendingPathComponent(p), encoding: .utf8)))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    static func isAllowed(_ path: String) -> Bool {
        allowed.keys.contains { $0.hasSuffix("/") ? path.hasPrefix($0) : path == $0 }
    }

    @Test func noSchemeBranchOutsideTheTransports() throws {
        let files = try Self.sources()
        #expect(files.count > 100, "Sources/ not found where expected: \(TestBrokers.packageRoot.path)")
        let found = files.filter { !Self.isAllowed($0.path) }.flatMap { Self.hits(in: $0.text, file: $0.path) }
        #expect(found.isEmpty, """
            ask transport.capabilities instead of the broker URL's scheme (or, for a decision about the URL itself, \
            add the file to SchemeBranchLintTests.allowed with why):
            \(found.map(\.description).joined(separator: "\n"))
            """)
        // The scan sees what it looks for: the allowed files do branch on the scheme.
        #expect(!files.filter { Self.isAllowed($0.path) }.flatMap { Self.hits(in: $0.text, file: $0.path) }.isEmpty)
    }

    @Test func theScanFindsEachFormAndSkipsLabelsAndComments() {
        let sample = """
            if transport.broker.scheme.isAMQP { a() }
            let mqtt = url.isMQTT
            switch broker.scheme {
            print(broker.scheme.rawValue)
            // on AMQP the broker keeps isAMQP bindings
            let schemeless = x.schemes
            """
        #expect(Self.hits(in: sample, file: "X.swift").map(\.line) == [1, 2, 3])
    }
}
