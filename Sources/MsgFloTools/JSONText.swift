import MsgFlo

/// JSON text handled as text, so that a tool prints what was sent (key order, number forms) instead of a
/// re-encoding of it.
package enum JSONText {
    /// The JSON text without insignificant whitespace, as JavaScript's `JSON.stringify(JSON.parse(text))` prints it
    /// for the common cases (key order and number spelling kept). Nil when `bytes` is not JSON.
    package static func compact(_ bytes: [UInt8]) -> String? {
        guard (try? JSONValue(parsing: bytes)) != nil else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var inString = false
        var escaped = false
        for b in bytes {
            if inString {
                out.append(b)
                if escaped { escaped = false }
                else if b == UInt8(ascii: "\\") { escaped = true }
                else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            case UInt8(ascii: "\""): inString = true; out.append(b)
            default: out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// How a tool shows a message: its JSON compacted, else the text as a JSON string (msgflo falls back to the raw
    /// string), else the bytes decoded leniently as a JSON string.
    package static func display(_ message: Message) -> String {
        if let json = compact(message.bytes) { return json }
        let text = message.text ?? String(decoding: message.bytes, as: UTF8.self)
        return JSONValue.string(text).serialized
    }
}
