/// Numbers that may come as text. IIPs written in a `.fbp` graph are strings (`'25' -> THRESHOLD` sends `"25"`, as
/// in msgflo), and so are numbers typed on many command lines; a handler that wants a number takes either.
extension JSONValue {
    /// A JSON number, or a string that holds one (`"25"`, `" 2.5 "`, `"-1e3"`); nil for anything else, `"nan"` and
    /// `"inf"` included.
    public var number: Double? {
        if let d = doubleValue { return d }
        guard case .string(let s) = self else { return nil }
        let t = s.trimmingWhitespace
        guard !t.isEmpty, t.count <= 64, t.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }),
              let d = Double(t), d.isFinite else { return nil }
        return d
    }

    /// An integral JSON number, or a string that holds one (`"25"`, `"25.0"`); nil for anything else.
    public var integer: Int? {
        if let i = intValue { return i }
        guard let d = number, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }
}

extension Message {
    /// The message as a number: JSON `25`, JSON `"25"`, or the plain text `25` (see ``JSONValue/number``).
    public var number: Double? { data?.number }

    /// The message as an integer: JSON `25`, JSON `"25"`, or the plain text `25` (see ``JSONValue/integer``).
    public var integer: Int? { data?.integer }
}

extension String {
    fileprivate var trimmingWhitespace: Substring {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? start
        return self[start..<max(start, end)]
    }
}
