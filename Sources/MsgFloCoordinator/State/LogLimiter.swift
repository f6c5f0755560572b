/// Keeps garbage on `fbp` from flooding the log: each distinct error is logged once, then identical ones are counted
/// for `window` seconds and summed up in one line; over `burst` distinct lines in a window, the rest are counted too.
/// Pure: the caller passes the time and prints what it returns.
package struct LogLimiter: Sendable {
    package var window: Double
    package var burst: Int
    private var windowStart: Double = -.infinity
    private var linesInWindow = 0
    private var seen: [String: Int] = [:]
    private var suppressedOther = 0

    package init(window: Double = 10, burst: Int = 20) {
        self.window = window
        self.burst = burst
    }

    /// The lines to log now for this error (zero, one, or a summary of the previous window and this one).
    package mutating func admit(_ line: String, at now: Double) -> [String] {
        var out = roll(at: now)
        if let n = seen[line] {
            seen[line] = n + 1
            return out
        }
        if linesInWindow >= burst {
            suppressedOther += 1
            return out
        }
        seen[line] = 0
        linesInWindow += 1
        out.append(line)
        return out
    }

    /// Summary lines for a finished window (call it from a timer too, so a lone burst is summed up).
    package mutating func roll(at now: Double) -> [String] {
        guard now - windowStart >= window else { return [] }
        var out: [String] = []
        let repeats = seen.values.reduce(0, +)
        if repeats > 0 { out.append("\(repeats) more identical errors in the last \(Int(window)) s were not logged") }
        if suppressedOther > 0 { out.append("\(suppressedOther) other errors in the last \(Int(window)) s were not logged") }
        windowStart = now
        linesInWindow = 0
        seen = [:]
        suppressedOther = 0
        return out
    }
}
