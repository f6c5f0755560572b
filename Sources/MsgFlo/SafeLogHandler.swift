import Logging

/// A log handler that passes every message and metadata value through ``SafeText`` before another handler writes
/// it: one log call is one line, whatever a participant called itself, and no line is longer than
/// ``SafeText/lineLimit`` bytes (metadata values ``SafeText/defaultLimit``). A URL's user-info in a message is shown
/// as `***` (``BrokerURL/redactCredentials(in:)``).
///
/// Every executable of the project logs through it, so no call site can forget to escape a name that came from the
/// network or a file. A participant author who bootstraps logging themselves can wrap their own handler:
/// `LoggingSystem.bootstrap { SafeLogHandler(MyHandler(label: $0)) }`.
public struct SafeLogHandler: LogHandler {
    public var wrapped: any LogHandler
    public var messageLimit: Int
    public var valueLimit: Int
    /// Kept here (not in `wrapped`) so that what it provides is escaped too.
    public var metadataProvider: Logger.MetadataProvider?

    public init(_ wrapped: any LogHandler, messageLimit: Int = SafeText.lineLimit,
                valueLimit: Int = SafeText.defaultLimit) {
        var inner = wrapped
        self.metadataProvider = inner.metadataProvider
        if inner.metadataProvider != nil { inner.metadataProvider = nil }
        self.wrapped = inner
        self.messageLimit = messageLimit
        self.valueLimit = valueLimit
    }

    /// Lines on standard error (``LineLogHandler``: `TIME LEVEL LABEL: message key=value`), escaped.
    public static func standardError(label: String, level: Logger.Level = .info) -> SafeLogHandler {
        var h = SafeLogHandler(LineLogHandler(label: SafeText.escape(label)))
        h.logLevel = level
        return h
    }

    public func log(event: LogEvent) {
        var event = event
        let message = BrokerURL.redactCredentials(in: event.message.description)
        event.message = Logger.Message(stringLiteral: SafeText.escape(message, limit: messageLimit))
        var metadata = event.metadata ?? [:]
        if let provided = metadataProvider?.get() {
            metadata.merge(provided) { explicit, _ in explicit }
        }
        if let error = event.error {
            // StreamLogHandler would print the error's description as it is.
            metadata["error.message"] = "\(error)"
            metadata["error.type"] = "\(String(reflecting: type(of: error)))"
            event.error = nil
        }
        event.metadata = metadata.isEmpty ? nil : escape(metadata)
        wrapped.log(event: event)
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = escape(newValue) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: SafeText.escape(key, limit: valueLimit)] = newValue.map(escape) }
    }

    private func escape(_ metadata: Logger.Metadata) -> Logger.Metadata {
        var out: Logger.Metadata = [:]
        for (k, v) in metadata { out[SafeText.escape(k, limit: valueLimit)] = escape(v) }
        return out
    }

    private func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let s): .string(SafeText.escape(s, limit: valueLimit))
        case .stringConvertible(let c): .string(SafeText.escape(c.description, limit: valueLimit))
        case .array(let a): .array(a.map(escape))
        case .dictionary(let d): .dictionary(escape(d))
        }
    }
}
