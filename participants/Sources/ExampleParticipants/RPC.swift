import MsgFlo
import MsgFloParticipant

/// The request/reply example flow (graphs/rpc.fbp): parse → compute → format. A request sent with
/// `msgflo-call --queue rpc.IN --json '"6 * 7"'` travels the three stages, its correlation id and reply-to carried
/// along by the SDK, and `Format` answers the caller with `"6 * 7 = 42"`. Messages between the stages are typed
/// (Codable).
public enum RPCExamples {
    /// `"6 * 7"` parsed.
    public struct Expression: Codable, Sendable, Equatable {
        public var a: Double
        public var op: String
        public var b: Double
    }

    /// An expression and its value.
    public struct Answer: Codable, Sendable, Equatable {
        public var expression: Expression
        public var value: Double
    }

    /// Text `"A OP B"` (a JSON string) → an ``Expression``.
    public static let parse = Participant(
        component: "Parse", label: "Parses \"a op b\"", icon: "code",
        inports: [Port("in", type: "string")], outports: [Port("out", type: "object"), Port("error", type: "object")]
    ) { _, msg, ctx in
        guard case .string(let text)? = msg.data else {
            throw MsgFloError(.invalidMessage, "Parse takes text such as \"6 * 7\"")
        }
        var a = "", op = "", b = ""
        for ch in text where !ch.isWhitespace {
            if op.isEmpty, "+-*/".contains(ch), !a.isEmpty { op = String(ch) } else if op.isEmpty { a.append(ch) } else { b.append(ch) }
        }
        guard let x = Double(a), let y = Double(b), !op.isEmpty else {
            throw MsgFloError(.invalidMessage, "Parse: '\(SafeText.escape(text, limit: 60))' is not \"number op number\"")
        }
        try await ctx.send("out", Expression(a: x, op: op, b: y))
    }

    /// ``Expression`` → ``Answer``.
    public static let compute = Participant(
        component: "Compute", label: "Computes an expression", icon: "calculator",
        inports: [Port("in", type: "object")], outports: [Port("out", type: "object"), Port("error", type: "object")]
    ) { _, msg, ctx in
        let e = try msg.decode(Expression.self)
        let value: Double
        switch e.op {
        case "+": value = e.a + e.b
        case "-": value = e.a - e.b
        case "*": value = e.a * e.b
        case "/": value = e.a / e.b
        default: throw MsgFloError(.invalidMessage, "Compute: unknown operator")
        }
        try await ctx.send("out", Answer(expression: e, value: value))
    }

    /// ``Answer`` → `"6 * 7 = 42"`, sent on `out` and, for a request, as the reply.
    public static let format = Participant(
        component: "Format", label: "Formats an answer, and answers the request", icon: "reply",
        inports: [Port("in", type: "object")], outports: [Port("out", type: "string")]
    ) { _, msg, ctx in
        let r = try msg.decode(Answer.self)
        func n(_ d: Double) -> String { d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(d) }
        let text = JSONValue.string("\(n(r.expression.a)) \(r.expression.op) \(n(r.expression.b)) = \(n(r.value))")
        try await ctx.send("out", text)
        try await ctx.reply(text)
    }

    /// Answers every request with its own body (and sends it on `out`): the server of `Scripts/bench rpc`.
    public static let echo = Participant(
        component: "Echo", label: "Answers a request with its body", icon: "reply",
        inports: [Port("in")], outports: [Port("out")]
    ) { _, msg, ctx in
        if !(try await ctx.reply(Message(bytes: msg.bytes))) { try await ctx.send("out", Message(bytes: msg.bytes)) }
    }
}
