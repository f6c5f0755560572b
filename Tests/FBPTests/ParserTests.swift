import Testing
@testable import FBP
import MsgFlo

func parse(_ s: String, cs: Bool = true, validate: Bool = true) throws -> ParseResult {
    try FBP.parse(s, options: ParseOptions(caseSensitive: cs, validateContents: validate))
}

func parseError(_ s: String, cs: Bool = true) -> FBPError? {
    do {
        _ = try parse(s, cs: cs)
        return nil
    } catch let e as FBPError {
        return e
    } catch {
        return nil
    }
}

@Suite("Language details (fbp-dsl.md)")
struct LanguageTests {
    @Test func emptyAndBlankInputs() throws {
        #expect(try parse("").graph.processes.isEmpty)
        #expect(try parse("\n\n\r\n").graph.processes.isEmpty)
        #expect(try parse("a(A)\n   \n").graph.processes.count == 1)
        #expect(try parse("a(A)   ").graph.processes.count == 1)
        #expect(parseError("a(A)\n   ") != nil)
        #expect(parseError("   ") != nil)
        #expect(try parse("# only a comment").graph.processes.isEmpty)
    }

    @Test func anonymousNames() throws {
        let g = try parse("(core/Output) -> (a/b/c) -> (my-cool/Comp) -> (a-b) -> (a/b)").graph
        #expect(g.processes.keys == ["_core_Output_1", "_a_b/c_1", "_my_cool/Comp_1", "_a_b_1", "_a_b_2"])
    }

    @Test func spaceBeforeParenIsAPort() throws {
        let r = try parse("a (A) -> IN b(B)")
        #expect(r.graph.processes.keys == ["_A_1", "b"])
        #expect(r.warnings.count == 1)
        #expect(r.warnings[0].message.contains("did you mean \"a(A)\""))
    }

    @Test func trueIsANodeNameUnlessTabbed() throws {
        #expect(parseError("true -> IN b(B)")?.message.contains("undefined source node \"true\"") == true)
        let g = try parse("\ttrue -> IN b(B)").graph
        #expect(g.connections[0].data == .bool(true))
    }

    @Test func iips() throws {
        let g = try parse("'a\\'b\\nc\\\\x' -> IN x(X)\n'' -> IN x\n-5.5e1 -> IN x\n{\"k\": [1, null, \"s\\u00e9\"]} -> IN x\n'multi\nline # -> ,' -> IN x").graph
        #expect(g.connections.map { $0.data } == [
            .string("a'b\\nc\\\\x"), .string(""), .number(-55),
            .object(JSONObject([("k", .array([1, .null, .string("sé")]))])), .string("multi\nline # -> ,"),
        ])
    }

    @Test func jsonIIPMayContinueOnNextLine() throws {
        let g = try parse("{\"a\": 1}\n-> IN x(X)").graph
        #expect(g.connections.count == 1)
    }

    @Test func metadata() throws {
        let g = try parse("a(A:main,k=v=w,x=12abc,y=1e3,z=,foo=/a/b)").graph
        let md = try #require(g.processes["a"]?.metadata)
        #expect(md["routes"] == .string("main"))
        #expect(md["k"] == .string("v"))
        #expect(md["x"] == .number(12))
        #expect(md["y"] == .number(1000))
        #expect(md["z"] == .string(""))
        #expect(md["foo"] == .string("/a/b"))
    }

    @Test func redeclarationLastWins() throws {
        let r = try parse("a(A:x=1)\na(B)\na()")
        #expect(r.graph.processes["a"]?.component == "B")
        #expect(r.graph.processes["a"]?.metadata?["x"] == .number(1))
        #expect(r.warnings.contains { $0.message.contains("replaces it with \"B\"") })
    }

    @Test func defaultPortsAndCaseFolding() throws {
        let g = try parse("DEFAULT_INPORT=Data\nDEFAULT_OUTPORT=Result\na(A) -> b(B) OUT[2] -> Foo[1] c(C)", cs: false).graph
        #expect(g.connections[0].src == PortRef(process: "a", port: "result"))
        #expect(g.connections[0].tgt == PortRef(process: "b", port: "data"))
        #expect(g.connections[1].src == PortRef(process: "b", port: "out", index: 2))
        #expect(g.connections[1].tgt == PortRef(process: "c", port: "foo", index: 1))
        let cs = try parse("a(A) -> b(B)").graph
        #expect(cs.connections[0].src?.port == "OUT")
    }

    @Test func exportsAndAnnotations() throws {
        let g = try parse("# @runtime msgflo\n# @name Foo  \nINPORT=Read(ReadFile).IN:FILE.NAME , # comment\nOUTPORT=a.b.c:X\na(A)\n", cs: false).graph
        #expect(g.inports["file.name"] == ExportedPort(process: "Read", port: "in"))
        #expect(g.outports["x"] == ExportedPort(process: "a", port: "b.c"))
        #expect(g.properties?["environment"] == .object(JSONObject([("type", "msgflo")])))
        #expect(g.properties?["name"] == .string("Foo  "))
    }

    @Test func juxtaposedStatementsAndCommas() throws {
        let g = try parse("a(A) -> b(B) c(C), d(D) -> e(E) # x, f(F)").graph
        #expect(g.processes.keys == ["a", "b", "c", "d", "e"])
        #expect(parseError("a(A),, b(B)") != nil)
        #expect(parseError(", a(A)") != nil)
    }

    @Test func chainEdgeRules() throws {
        // middle element without both ports: the edge into it is dropped (with a warning)
        let r = try parse("a(A) -> b(B)\na -> b OUT -> IN c(C)")
        #expect(r.graph.connections.count == 2)
        #expect(r.warnings.contains { $0.message.contains("the connection into \"b OUT\" is dropped") && $0.location?.line == 2 })
        // 'x' -> 'y' keeps only 'y'
        let r2 = try parse("'x' -> 'y' -> IN b(B)")
        #expect(r2.graph.connections.map { $0.data } == [.string("y")])
        #expect(r2.warnings.count == 1)
        // a bridge in the middle
        let r3 = try parse("a(A) OUT -> IN b(B) OUT -> IN c(C)")
        #expect(r3.graph.connections.count == 2)
        #expect(r3.warnings.isEmpty)
    }

    @Test func trailingTokensWarn() throws {
        let r = try parse("a(A) OUT -> IN b(B) OUT")
        #expect(r.graph.connections.count == 1)
        #expect(r.warnings.count == 1)
        #expect(r.warnings[0].location == SourceLocation(offset: 20, line: 1, column: 21))
    }

    @Test func annotationLikeCommentsWarn() throws {
        for (text, reason) in [
            ("  # @name Foo\n", "column 1"),
            ("#@name Foo\n", "space between"),
            ("# @name a,b\n", "value may contain only"),
            ("# @name Foo", "line break"),
            ("a(A) # @name Foo\n", "line of its own"),
        ] {
            let r = try parse(text)
            #expect(r.graph.properties == nil, "\(text)")
            #expect(r.warnings.count == 1 && r.warnings[0].message.contains(reason), "\(text): \(r.warnings)")
        }
        #expect(try parse("# @name Foo\n").warnings.isEmpty)
    }

    @Test func duplicateExportsAndJSONKeysWarn() throws {
        let r = try parse("INPORT=a.IN:X\nINPORT=b.IN:X\na(A)\nb(B)\n{\"k\": 1, \"k\": 2} -> IN a")
        #expect(r.graph.inports["X"]?.process == "b")
        #expect(r.warnings.count == 2)
        #expect(r.graph.connections[0].data == .object(JSONObject([("k", 2)])))
    }

    @Test func crlfAndUnicodeNewlines() throws {
        let g = try parse("a(A) -> b(B)\r\nc(C)\u{2028}d(D)").graph
        #expect(g.processes.keys == ["a", "b", "c", "d"])
        #expect(parseError("a(A)\u{0085}b(B)") != nil)
    }
}

@Suite("Errors")
struct ErrorTests {
    @Test func syntaxErrorPositionAndCaret() throws {
        let e = try #require(parseError("a(A) -> b(B)\n'foo' --> Display(Output)"))
        #expect(e.kind == .syntax)
        #expect(e.location?.line == 2)
        #expect(e.location?.column == 7)
        #expect(e.message == "Expected \" \" or \"->\" but \"-\" found.")
        #expect(e.caretDisplay == "'foo' --> Display(Output)\n      ^")
        #expect(e.found == "-")
    }

    @Test func errorAtEndOfInput() throws {
        let e = try #require(parseError("a(A) -> 'unterminated"))
        #expect(e.message.hasSuffix("but end of input found."))
        #expect(e.location?.column == 22)
    }

    @Test func nonASCIIAndTabs() throws {
        let e = try #require(parseError("\tnode(é)"))
        #expect(e.location?.line == 1)
        let e2 = try #require(parseError("a(Aé)"))
        #expect(e2.message.contains("but \"\\xE9\" found."))
        #expect(e2.location?.column == 4)
    }

    @Test func validationErrorsHavePositions() throws {
        let e = try #require(parseError("a(A) -> b(B)\nb OUT -> IN nowhere"))
        #expect(e.kind == .validation)
        #expect(e.message == "Edge from \"b\" port \"OUT\" is connected to an undefined target node \"nowhere\"")
        #expect(e.location?.line == 2 && e.location?.column == 13)
        let e2 = try #require(parseError("Read()"))
        #expect(e2.message == "Node \"Read\" does not have a component defined")
        // the reference crashes with a TypeError for falsy IIPs; we report it
        let e3 = try #require(parseError("'' -> IN x"))
        #expect(e3.message == "IIP containing \"\" is connected to an undefined target node \"x\"")
        let e4 = try #require(parseError("[1,2] -> IN x"))
        #expect(e4.message.contains("IIP containing \"1,2\""))
        #expect(try parse("a -> IN x", validate: false).graph.connections.count == 1)
    }

    @Test func legacyExportIsASyntaxError() throws {
        let e = try #require(parseError("EXPORT=Read.IN:FILENAME\nRead(ReadFile)"))
        #expect(e.kind == .syntax)
        #expect(e.location?.column == 7)
    }
}

@Suite("JSON")
struct JSONTests {
    @Test func numbersLikeJavaScript() {
        let cases: [(Double, String)] = [(0, "0"), (-0.0, "0"), (1, "1"), (-5, "-5"), (1.5, "1.5"), (0.1, "0.1"),
                                         (1e21, "1e+21"), (1e20, "100000000000000000000"), (1e-7, "1e-7"),
                                         (0.000001, "0.000001"), (123456789.125, "123456789.125"), (2.5e-10, "2.5e-10"),
                                         (.nan, "null"), (.infinity, "null")]
        for (d, s) in cases { #expect(JSONWriter.numberText(d, json: true) == s, "\(d)") }
    }

    @Test func numbersReadLikeParseFloat() throws {
        let texts = ["0", "-0", "7", "-12", "123456789012345", "-999999999999999", "1234567890123456", "12345678901234567890",
                     "1.5", "-0.0", "1e3", "1E-2", "2.5e+10", "0.1", "9007199254740993"]
        for t in texts {
            let v = try JSONValue.parse(t)
            let d = try #require(Double(t))
            #expect(v == .number(d), "\(t)")
            #expect(v.numberValue?.sign == d.sign, "\(t)")
        }
        // in IIPs, and written back as JSON.stringify does
        let g = try parse("[0, -0, 42, 1.5e2, 123456789012345678] -> IN a(A)").graph
        #expect(g.jsonText(indent: 0).contains("\"data\":[0,0,42,150,123456789012345680]"))
    }

    @Test func stringsEscapedLikeStringify() {
        #expect(JSONWriter.string(.string("a\"b\\c\n\t\u{1}é\u{2028}"), indent: 0) == "\"a\\\"b\\\\c\\n\\t\\u0001é\u{2028}\"")
    }

    @Test func prettyPrintingLikeStringify() throws {
        let v = try JSONValue.parse("{\"a\":[],\"b\":{},\"c\":[1,{\"d\":null}]}")
        #expect(JSONWriter.string(v) == "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": null\n    }\n  ]\n}")
    }

    @Test func surrogatesAndErrors() throws {
        #expect(try JSONValue.parse("\"\\ud83d\\ude00\"") == .string("😀"))
        #expect(throws: FBPError.self) { try JSONValue.parse("[1,]") }
        #expect(throws: FBPError.self) { try JSONValue.parse("01") }
        #expect(throws: FBPError.self) { try JSONValue.parse("{\"a\" 1}") }
        #expect(throws: FBPError.self) { try JSONValue.parse("\"a\u{1}\"") }
    }

    @Test func graphJSONErrorsNameTheField() {
        #expect(throws: FBPError.self) { try Graph(jsonText: "[]") }
        do {
            _ = try Graph(jsonText: "{\"processes\": {\"a\": {\"component\": 5}}}")
            Issue.record("expected an error")
        } catch let e as FBPError {
            #expect(e.message.contains("processes.a.component"))
        } catch {
            Issue.record("\(error)")
        }
    }
}

@Suite("Serializer")
struct SerializerTests {
    @Test func losslessWhereTheReferenceIsNot() throws {
        let src = """
            a(X:x=3,y=4,label=foo) OUT[1] -> IN[2] b(X)
            'say "hi" \\\\ there' -> IN b
            {"k": [true, null]} -> OPTS b
            \tfalse -> FLAG b
            7 -> N b
            lonely(Comp)
            (anon/Comp:main) -> IN b
            """
        let g = try parse(src).graph
        let s = FBP.serialize(g)
        #expect(s.warnings.isEmpty, "\(s.warnings)")
        #expect(try parse(s.text).graph == g, "\(s.text)")
    }

    /// Found by the fuzz test: `(A:=1)` parses to the metadata key "", which the serializer dropped.
    @Test func emptyMetadataKeyRoundTrips() throws {
        let g = try parse("'x' -> IN a(A:=1)\na OUT -> IN b(B:=)").graph
        #expect(g.processes["a"]?.metadata == JSONObject([("", "1")]))
        let s = FBP.serialize(g)
        #expect(s.warnings.isEmpty, "\(s.warnings)")
        #expect(try parse(s.text).graph == g, "\(s.text)")
    }

    @Test func unrepresentableThingsWarn() throws {
        var g = Graph()
        g.processes["core/Thing"] = Process(component: "x@y", metadata: JSONObject([("x", -5), ("width", 3)]))
        g.processes["core/Thing2"] = Process(component: "ok", metadata: nil)
        g.connections = [Connection(src: PortRef(process: "core/Thing", port: "Out"), tgt: PortRef(process: "core/Thing2", port: "in"),
                                    metadata: JSONObject([("route", 1)]))]
        g.groups = [.object(JSONObject([("name", "g")]))]
        let s = FBP.serialize(g)
        #expect(s.text.contains("Thing(x@y) OUT -> IN Thing2(ok)"))
        #expect(s.warnings.count >= 5)
    }

    @Test func orderOfProcessesIsKept() throws {
        let g = try parse("Display(Output)\na(A) -> IN b(B)").graph
        let text = FBP.serialize(g).text
        #expect(try parse(text).graph.processes.keys == ["Display", "a", "b"])
    }
}
