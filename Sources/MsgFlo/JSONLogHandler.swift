#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// How log lines look: `text` (`TIME LEVEL LABEL: message key=value …`, ``LineLogHandler``) or `json` (one JSON object per line:
/// `{"time":…,"level":…,"label":…,"message":…,"metadata":{…}}`). Either way every line goes through
/// ``SafeLogHandler`` first, so names from the network are escaped and capped before they are written (and then
/// JSON-escaped as any string is).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json

    /// `--log-format` when given, else `MSGFLO_LOG_FORMAT`, else text. Nil for an unknown name.
    public static func resolve(_ given: String?, environment: [String: String]) -> LogFormat? {
        if let given { return LogFormat(rawValue: given.lowercased()) }
        guard let env = environment["MSGFLO_LOG_FORMAT"], !env.isEmpty else { return .text }
        return LogFormat(rawValue: env.lowercased())
    }

    /// A handler writing to standard error in this format, escaped (``SafeLogHandler``).
    public func handler(label: String, level: Logger.Level = .info) -> SafeLogHandler {
        var h = SafeLogHandler(LineLogHandler(label: SafeText.escape(label), format: self))
        h.logLevel = level
        return h
    }
}

/// Writes each log event as one line to a file descriptor (standard error by default), in ``LogFormat/text``
/// (`2026-11-30T21:54:39.123Z warning msgflo: participant lost: … role=r`: metadata after the message, sorted by key;
/// no `[Module]` source tag as swift-log's StreamLogHandler prints) or ``LogFormat/json`` (`time` in RFC 3339 UTC with
/// milliseconds, `level`, `label`, `message`, and `metadata` when there is any, nested values as JSON arrays and
/// objects). One `write(2)` per line, so lines of concurrent loggers do not interleave.
package struct LineLogHandler: LogHandler {
    package var label: String
    package var format: LogFormat
    package var logLevel: Logger.Level = .info
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    let fd: Int32

    package init(label: String, format: LogFormat = .text, fileDescriptor: Int32 = 2,
                metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.format = format
        self.fd = fileDescriptor
        self.metadataProvider = metadataProvider
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        let all = LogLine.metadata(metadata, metadataProvider, event)
        let message = event.message.description
        switch format {
        case .json:
            LogLine.write(Self.jsonLine(time: LogLine.now(), level: event.level, label: label, message: message,
                                        metadata: all), to: fd)
        case .text:
            var line = "\(LogLine.now()) \(event.level) \(label): \(message)"
            for k in all.keys.sorted() { line += " \(k)=\(all[k]!)" }
            LogLine.write(line + "\n", to: fd)
        }
    }

    /// One JSON line (with its newline). Public for tests and for other writers of the same format.
    package static func jsonLine(time: String, level: Logger.Level, label: String, message: String,
                                metadata: Logger.Metadata) -> String {
        var out = "{\"time\":"
        JSONValue.writeString(time, to: &out)
        out += ",\"level\":"
        JSONValue.writeString(level.rawValue, to: &out)
        out += ",\"label\":"
        JSONValue.writeString(label, to: &out)
        out += ",\"message\":"
        JSONValue.writeString(message, to: &out)
        if !metadata.isEmpty {
            out += ",\"metadata\":"
            appendObject(&out, metadata)
        }
        out += "}\n"
        return out
    }

    static func appendObject(_ out: inout String, _ m: Logger.Metadata) {
        out += "{"
        for (i, k) in m.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            JSONValue.writeString(k, to: &out)
            out += ":"
            appendValue(&out, m[k]!)
        }
        out += "}"
    }

    static func appendValue(_ out: inout String, _ v: Logger.Metadata.Value) {
        switch v {
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .stringConvertible(let c): JSONValue.writeString(c.description, to: &out)
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() {
                if i > 0 { out += "," }
                appendValue(&out, e)
            }
            out += "]"
        case .dictionary(let d): appendObject(&out, d)
        }
    }
}

/// What both handlers share: metadata merged (handler's, provider's, the event's, the error), the time, one write.
enum LogLine {
    static func metadata(_ own: Logger.Metadata, _ provider: Logger.MetadataProvider?, _ event: LogEvent) -> Logger.Metadata {
        var all = own
        if let provided = provider?.get() { all.merge(provided) { mine, _ in mine } }
        if let m = event.metadata { all.merge(m) { _, explicit in explicit } }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return all
    }

    /// One `write(2)` of the whole line (retried on a short write), so concurrent lines do not interleave.
    static func write(_ line: String, to fd: Int32) {
        line.utf8CString.withUnsafeBufferPointer { p in
            var off = 0
            let n = p.count - 1  // without the NUL
            while off < n {
                let w = Glibc.write(fd, p.baseAddress! + off, n - off)
                if w <= 0 { if w < 0 && errno == EINTR { continue }; return }
                off += w
            }
        }
    }

    /// Now as `2026-11-30T21:54:39.123Z`.
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
