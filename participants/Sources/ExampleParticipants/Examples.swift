import MsgFlo
import MsgFloParticipant
import Synchronization

/// The example participants, by component name (as `participants/library.json` names them).
public enum Examples {
    public static let all: [String: Participant] = [
        "Repeat": repeatParticipant, "Uppercase": uppercase, "Count": count(), "Split": split,
        "Interval": interval, "Print": print, "Relay": relay, "Drop": drop, "Output": output,
        "Parse": RPCExamples.parse, "Compute": RPCExamples.compute, "Format": RPCExamples.format,
        "Echo": RPCExamples.echo,
    ]

    /// in → out, the same bytes.
    public static let repeatParticipant = Participant(
        component: "Repeat", label: "Repeats its input unchanged", icon: "forward",
        inports: [Port("in", description: "anything")], outports: [Port("out", description: "the same bytes")]
    ) { _, msg, ctx in
        try await ctx.send("out", msg)
    }

    /// A transform: text upper-cased (a JSON string stays a JSON string); errors on input that is not text.
    public static let uppercase = Participant(
        component: "Uppercase", label: "Upper-cases text", icon: "font",
        inports: [Port("in", type: "string")], outports: [Port("out", type: "string"), Port("error", type: "object")]
    ) { _, msg, ctx in
        if case .string(let s)? = msg.json {
            try await ctx.send("out", .string(s.uppercased()))
        } else if let text = msg.text, msg.json == nil {
            try await ctx.send("out", text: text.uppercased())
        } else {
            throw MsgFloError(.invalidMessage, "Uppercase takes text, got \(msg.json?.kindName ?? "\(msg.count) bytes")")
        }
    }

    /// State: sends how many messages it has seen so far; a message on `reset` starts again from 0.
    public static func count() -> Participant {
        let n = Mutex(0)
        return Participant(
            component: "Count", label: "Counts messages", icon: "sort-numeric-asc",
            inports: [Port("in"), Port("reset")], outports: [Port("count", type: "int")]
        ) { port, _, ctx in
            if port == "reset" {
                n.withLock { $0 = 0 }
                return
            }
            let value = n.withLock { v -> Int in
                v += 1
                return v
            }
            try await ctx.send("count", .int(value))
        }
    }

    /// Several outputs per input: each element of an array, or each word of a string, on its own.
    public static let split = Participant(
        component: "Split", label: "Splits arrays into elements and text into words", icon: "scissors",
        inports: [Port("in", type: "array")], outports: [Port("out")]
    ) { _, msg, ctx in
        switch msg.data {
        case .array(let items)?:
            for item in items { try await ctx.send("out", item) }
        case .string(let s)?:
            for word in s.split(whereSeparator: { $0.isWhitespace }) { try await ctx.send("out", .string(String(word))) }
        case let other?:
            try await ctx.send("out", other)
        case nil:
            try await ctx.send("out", msg)
        }
    }

    /// A source: once told an interval in milliseconds (an IIP on `interval`), sends 0, 1, 2, … on `out` at that
    /// pace; a new interval restarts it, 0 stops it.
    public static let interval = Participant(
        component: "Interval", label: "Sends a counter at an interval set by IIP", icon: "clock-o",
        inports: [Port("interval", type: "int", description: "milliseconds; 0 stops")], outports: [Port("out", type: "int")]
    ) { _, msg, ctx in
        guard let ms = msg.json?.doubleValue, ms >= 0 else {
            throw MsgFloError(.invalidMessage, "interval must be a number of milliseconds")
        }
        guard ms > 0 else {
            ctx.participant.cancelTask("timer")
            return
        }
        ctx.participant.replaceTask("timer") { p in
            var n = 0
            while true {
                try await Task.sleep(for: .milliseconds(ms))
                try await p.send("out", .int(n))
                n += 1
            }
        }
    }

    /// A sink: prints each message on a line of stdout (the text, escaped as ``SafeText`` escapes it so that a
    /// message cannot add lines or drive the terminal; or the byte count of binary data).
    public static let print = Participant(
        component: "Print", label: "Prints what it gets", icon: "print", inports: [Port("in")]
    ) { _, msg, _ in
        let line = msg.text.map { SafeText.escape($0, limit: nil, keepingTabs: true) } ?? "<\(msg.count) bytes>"
        Output.line(line)
    }

    /// A sink that takes every message and does nothing with it (fbp-protocol's core/Drop).
    public static let drop = Participant(
        component: "Drop", label: "Takes messages and drops them", icon: "trash-o", inports: [Port("in")]
    ) { _, _, _ in }

    /// Prints each message on a line of stdout (as Print) and forwards it unchanged on `out` (fbp-protocol's
    /// core/Output).
    public static let output = Participant(
        component: "Output", label: "Prints what it gets and passes it on", icon: "terminal",
        inports: [Port("in")], outports: [Port("out", description: "the same bytes")]
    ) { _, msg, ctx in
        Output.line(msg.text ?? "<\(msg.count) bytes>")
        try await ctx.send("out", msg)
    }

    /// The benchmark participant: in → out, the bytes as they are, nothing else.
    public static let relay = Participant(component: "Relay", icon: "exchange", inports: ["in"], outports: ["out"]) {
        _, msg, ctx in try await ctx.send("out", msg)
    }
}

/// Whole lines to stdout, flushed, never interleaved.
public enum Output {
    private static let lock = Mutex(())
    public static func line(_ text: String) {
        lock.withLock { _ in
            Swift.print(text)
            fflushStdout()
        }
    }
}
