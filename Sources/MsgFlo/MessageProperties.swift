/// The metadata that travels beside a message's bytes: what AMQP calls basic properties (plus its headers table),
/// and MQTT 5 its publish properties. The body never changes because of them.
///
/// Every field is optional; an empty value (``isEmpty``) is what msgflo's own participants send and read. Limits
/// (checked with ``check(_:)`` before a send, and by transports on what arrives) are in bytes of UTF-8:
/// short strings (ids, reply-to, content type, header keys) at most ``shortLimit`` (AMQP's shortstr), header string
/// values at most ``valueLimit``, at most ``maxHeaders`` headers.
public struct MessageProperties: Sendable, Hashable {
    /// A header value: string, number or boolean (what both AMQP's headers table and JSON can hold).
    public enum HeaderValue: Sendable, Hashable, CustomStringConvertible {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)

        public var description: String {
            switch self {
            case .string(let s): s
            case .int(let i): String(i)
            case .double(let d): String(d)
            case .bool(let b): b ? "true" : "false"
            }
        }

        /// The value as JSON.
        public var json: JSONValue {
            switch self {
            case .string(let s): .string(s)
            case .int(let i): .int(Int(i))
            case .double(let d): .double(d)
            case .bool(let b): .bool(b)
            }
        }
    }

    public static let shortLimit = 255
    public static let valueLimit = 4096
    public static let maxHeaders = 64

    /// Pairs a reply with its request.
    public var correlationID: String?
    /// Where the answer goes: an AMQP queue (or `amq.rabbitmq.reply-to…`), an MQTT 5 response topic.
    public var replyTo: String?
    public var messageID: String?
    /// Seconds since 1970 (AMQP's timestamp). MQTT 5 carries it as the user property `timestamp`.
    public var timestamp: UInt64?
    public var contentType: String?
    public var headers: [String: HeaderValue]
    /// 0…9 (AMQP). Not carried on MQTT.
    public var priority: UInt8?
    /// How long the message may wait in a queue, in milliseconds (AMQP `expiration`, MQTT 5 message expiry in
    /// whole seconds, rounded up).
    public var expirationMilliseconds: UInt64?
    /// Survives a broker restart (AMQP delivery mode 2). Nil: the transport's default.
    public var persistent: Bool?

    public init(correlationID: String? = nil, replyTo: String? = nil, messageID: String? = nil,
                timestamp: UInt64? = nil, contentType: String? = nil, headers: [String: HeaderValue] = Dictionary(),
                priority: UInt8? = nil, expirationMilliseconds: UInt64? = nil, persistent: Bool? = nil) {
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.messageID = messageID
        self.timestamp = timestamp
        self.contentType = contentType
        self.headers = headers
        self.priority = priority
        self.expirationMilliseconds = expirationMilliseconds
        self.persistent = persistent
    }

    /// No field set. Asked once per message sent: field by field, without building an empty value to compare with.
    public var isEmpty: Bool {
        correlationID == nil && replyTo == nil && messageID == nil && timestamp == nil && contentType == nil
            && headers.isEmpty && priority == nil && expirationMilliseconds == nil && persistent == nil
    }

    /// The headers a handler's sends carry forward from the message it handles: tracing ones (W3C `traceparent`,
    /// `tracestate`, and any `x-` header).
    public static func isTracingHeader(_ key: String) -> Bool {
        let k = key.lowercased()
        return k == "traceparent" || k == "tracestate" || k == "baggage" || k.hasPrefix("x-")
    }

    /// What a message sent while handling one with these properties carries by default: its correlation id, its
    /// reply-to and its tracing headers.
    public var forwarded: MessageProperties {
        var p = MessageProperties(correlationID: correlationID, replyTo: replyTo)
        if !headers.isEmpty { p.headers = headers.filter { Self.isTracingHeader($0.key) } }
        return p
    }

    /// `base` with every field set here replacing it (headers merged key by key).
    public func overriding(_ base: MessageProperties) -> MessageProperties {
        var p = base
        if let correlationID { p.correlationID = correlationID }
        if let replyTo { p.replyTo = replyTo }
        if let messageID { p.messageID = messageID }
        if let timestamp { p.timestamp = timestamp }
        if let contentType { p.contentType = contentType }
        for (k, v) in headers { p.headers[k] = v }
        if let priority { p.priority = priority }
        if let expirationMilliseconds { p.expirationMilliseconds = expirationMilliseconds }
        if let persistent { p.persistent = persistent }
        return p
    }

    /// Throws a one-line `.invalidArgument` error when a field is over its limit or holds a NUL byte.
    public func check(what: String = "message properties") throws(MsgFloError) {
        func short(_ v: String?, _ name: String) throws(MsgFloError) {
            guard let v else { return }
            if v.utf8.count > Self.shortLimit {
                throw MsgFloError(.invalidArgument, "\(what): \(name) is \(v.utf8.count) bytes, more than \(Self.shortLimit)")
            }
            if SafeText.containsNUL(v) { throw MsgFloError(.invalidArgument, "\(what): \(name) contains a NUL byte") }
        }
        try short(correlationID, "correlation id")
        try short(replyTo, "reply-to")
        try short(messageID, "message id")
        try short(contentType, "content type")
        if let priority, priority > 9 {
            throw MsgFloError(.invalidArgument, "\(what): priority \(priority) is not in 0…9")
        }
        if headers.count > Self.maxHeaders {
            throw MsgFloError(.invalidArgument, "\(what): \(headers.count) headers, more than \(Self.maxHeaders)")
        }
        for (k, v) in headers {
            if k.isEmpty { throw MsgFloError(.invalidArgument, "\(what): a header has an empty name") }
            try short(k, "header name '\(SafeText.escape(k, limit: 40))'")
            if case .string(let s) = v {
                if s.utf8.count > Self.valueLimit {
                    throw MsgFloError(.invalidArgument, "\(what): header '\(SafeText.escape(k, limit: 40))' is \(s.utf8.count) bytes, more than \(Self.valueLimit)")
                }
                if SafeText.containsNUL(s) {
                    throw MsgFloError(.invalidArgument, "\(what): header '\(SafeText.escape(k, limit: 40))' contains a NUL byte")
                }
            }
        }
    }

    /// Reads a string that arrived from the network: nil unless valid UTF-8, without NUL, within `limit` bytes.
    public static func networkString(_ bytes: UnsafeRawBufferPointer, limit: Int = shortLimit) -> String? {
        guard bytes.count <= limit else { return nil }
        // One pass for NUL and ASCII: correlation ids, reply-to queues and content types are ASCII, and the
        // general validation (generic code) was the costliest part of reading a request's properties.
        var ascii = true
        for b in bytes {
            if b == 0 { return nil }
            if b >= 0x80 { ascii = false }
        }
        return ascii ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
    }

    /// The properties as a JSON object (for tools and the environment of `msgflo-exec`); keys sorted.
    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if let correlationID { o["correlation_id"] = .string(correlationID) }
        if let replyTo { o["reply_to"] = .string(replyTo) }
        if let messageID { o["message_id"] = .string(messageID) }
        if let timestamp { o["timestamp"] = .int(Int(clamping: timestamp)) }
        if let contentType { o["content_type"] = .string(contentType) }
        if !headers.isEmpty {
            o["headers"] = .object(JSONObject(headers.mapValues(\.json)))
        }
        if let priority { o["priority"] = .int(Int(priority)) }
        if let expirationMilliseconds { o["expiration"] = .int(Int(clamping: expirationMilliseconds)) }
        if let persistent { o["persistent"] = .bool(persistent) }
        return .object(JSONObject(o))
    }
}

extension MessageProperties.HeaderValue {
    /// Reads `k=v` text (from a command line, an MQTT 5 user property): `true`/`false` are booleans, integers and
    /// finite decimal numbers (`2.5`, `1e3`) numbers, the rest strings.
    public init(parsing text: String) {
        if text == "true" { self = .bool(true) }
        else if text == "false" { self = .bool(false) }
        else if let i = Int64(text) { self = .int(i) }
        else if text.utf8.count <= 40, text.utf8.allSatisfy({ (48...57).contains($0) || "+-.eE".utf8.contains($0) }),
                let d = Double(text), d.isFinite { self = .double(d) }
        else { self = .string(text) }
    }
}
