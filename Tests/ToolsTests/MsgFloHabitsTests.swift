import Foundation
import MsgFloCLI
@testable import MsgFloTools
import TestSupport
import Testing

/// msgflo's option habits (issue 16): optional values, options msgflo had, msgflo-register-foreign.
@Suite struct MsgFloHabitsTests {
    @Test("booleans take msgflo's optional values; --shell and --forward alone stand for their default")
    func normalize() {
        let a = SetupCommand.msgfloArguments
        #expect(a.normalize(["g.fbp", "--participants", "true"]) == ["g.fbp", "--participants"])
        #expect(a.normalize(["g.fbp", "--participants", "false", "--forever=true"]) == ["g.fbp", "--forever"])
        #expect(a.normalize(["--forever=false", "g.fbp"]) == ["g.fbp"])
        #expect(a.normalize(["--forever", "g.fbp"]) == ["--forever", "g.fbp"])     // g.fbp is no boolean word
        #expect(a.normalize(["--discover", "yes", "--forever", "0"]) == ["--discover"])
        #expect(a.normalize(["--forever=maybe"]) == ["--forever=maybe"])           // left for the parser to reject
        #expect(a.normalize(["g.fbp", "--shell"]) == ["g.fbp", "--shell=/bin/sh"])
        #expect(a.normalize(["--shell", "--forever"]) == ["--shell=/bin/sh", "--forever"])
        #expect(a.normalize(["--shell", "/bin/bash"]) == ["--shell", "/bin/bash"])
        #expect(a.normalize(["--forward", "--shell"]) == ["--forward=stderr,stdout", "--shell=/bin/sh"])
        #expect(a.normalize(["--", "--forever", "false"]) == ["--", "--forever", "false"])
    }

    @Test("msgflo-setup parses msgflo's spellings")
    func setupParses() throws {
        func parse(_ args: [String]) throws -> SetupCommand {
            try SetupCommand.parse(SetupCommand.msgfloArguments.normalize(args))
        }
        let a = try parse(["g.fbp", "--participants", "true", "--forever=false", "--discover", "--shell"])
        #expect(a.participants && !a.forever && a.discover && a.shell == "/bin/sh")
        let b = try parse(["g.fbp", "--participants=false", "--forever", "true", "--shell", "/bin/bash"])
        #expect(!b.participants && b.forever && !b.discover && b.shell == "/bin/bash")
        #expect(throws: (any Error).self) { try parse(["g.fbp", "--forever=maybe"]) }
    }

    @Test("msgflo-procfile takes --broker (ignored) and --componentdir")
    func procfileTakesBroker() throws {
        let p = try ProcfileCommand.parse(["g.fbp", "--broker", "amqp://x", "--componentdir", "c"])
        #expect(p.broker == "amqp://x" && p.components == "c")
    }

    @Test("msgflo-register-foreign: a role from --role or the file; .role missing is one line")
    func registerForeignRole() throws {
        #expect(try Register.role(yaml: "component: A\nrole: r1\n", path: "a.yaml") == "r1")
        #expect(throws: ToolFailure.self) { try Register.role(yaml: "component: A\n", path: "a.yaml") }
        #expect(throws: ToolFailure.self) { try Register.role(yaml: "role: r\n", path: "a.yaml") }
        let c = try RegisterForeignCommand.parse(["d.yaml", "--role", "r", "--forever", "false"])
        #expect(c.role == "r" && c.forever.value == false && c.definition == "d.yaml")
        #expect(try RegisterForeignCommand.parse(["d.yaml"]).forever.value == false)   // msgflo's default
    }

    @Test("the executables: msgflo-setup --participants false --forever=false on a graph with nothing to start; msgflo-register-foreign without a role; msgflo --help")
    func processes() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "a(A) OUT -> IN b(B)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        try "component: A\n".write(to: dir.appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        let foreign = try await ToolProcess.run("msgflo-register-foreign", [dir.appendingPathComponent("a.yaml").path,
                                                                          "--broker", "amqp://127.0.0.1:1"], timeout: .seconds(30))
        #expect(foreign.status == 1)
        #expect(foreign.stderr.contains("DEPRECATED"))
        #expect(foreign.stderr.contains(".role is not defined for component A"), "\(foreign.stderr)")

        let help = try await ToolProcess.run("msgflo", ["--help"], timeout: .seconds(30))
        #expect(help.status == 0)
        for option in ["--graph", "--library", "--componentdir", "--ignore", "--shell", "--participant-timeout", "status"] {
            #expect(help.stdout.contains(option), "msgflo --help lacks \(option): \(help.stdout)")
        }
        let setupHelp = try await ToolProcess.run("msgflo-setup", ["--help"], timeout: .seconds(30))
        #expect(setupHelp.status == 0 && setupHelp.stdout.contains("true|false"))
    }

    @Test("msgflo-setup --participants true: a child that fails before announcing itself is shown with its last stderr lines")
    func setupShowsAFailedChildsStderr() async throws {
        let dir = try ToolProcess.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let role = TestBrokers.unique("bad")
        try "\(role)(Bad)\n".write(to: dir.appendingPathComponent("g.fbp"), atomically: true, encoding: .utf8)
        try #"{"components": {"Bad": "sh -c 'echo first line >&2; printf \"the reason\\033[31m\\n\" >&2; exit 3' #ROLE"}}"#
            .write(to: dir.appendingPathComponent("lib.json"), atomically: true, encoding: .utf8)
        let r = try await ToolProcess.run("msgflo-setup", ["g.fbp", "--participants", "true", "--library", "lib.json",
                                                           "--broker", try TestBrokers.url(.amqp).unredacted],
                                          cwd: dir, timeout: .seconds(60))
        #expect(r.status == 1, "\(r)")
        #expect(r.stderrLines.count == 1, "\(r)")
        #expect(r.stderr.contains("exited with status 3 before announcing itself; its stderr ended with: first line | the reason?[31m"), "\(r)")
    }
}
