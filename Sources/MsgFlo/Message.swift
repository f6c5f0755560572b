/// A message: bytes, exactly as they travel. Nothing in the path re-encodes them.
///
/// Senders write JSON (UTF-8) unless told otherwise; receivers use ``json`` and fall back to ``bytes`` or ``text``.
/// ``properties`` travel beside the bytes (AMQP basic properties, MQTT 5 properties); empty unless set. Equality
/// and hashing are those of the bytes (a message received says `persistent` where the one sent said nothing);
/// compare ``properties`` on their own.
public struct Message: Sendable, Hashable {
    public static func == (a: Message, b: Message) -> Bool { a.bytes == b.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    public var bytes: [UInt8]
    public var properties = MessageProperties()

    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(bytes: [UInt8], properties: MessageProperties) {
        self.bytes = bytes
        self.properties = properties
    }
    public init(_ bytes: some Sequence<UInt8>) { self.bytes = Array(bytes) }

    /// A message whose body is the JSON encoding of `value`.
    public init(json value: JSONValue) { self.bytes = value.bytes }

    /// A message whose body is the UTF-8 text, as is (not JSON-quoted).
    public init(text: String) { self.bytes = Array(text.utf8) }

    /// The body parsed as JSON, or nil when it is not JSON.
    public var json: JSONValue? { try? JSONValue(parsing: bytes) }

    /// The body parsed as JSON; the error says why it is not.
    public func decodeJSON() throws(MsgFloError) -> JSONValue { try JSONValue(parsing: bytes) }

    /// The body as UTF-8 text, or nil when it is not valid UTF-8.
    public var text: String? { String(validating: bytes, as: UTF8.self) }

    /// What msgflo's receivers hand their process function: the JSON value, else the text as a JSON string.
    /// Nil only for bytes that are neither JSON nor UTF-8.
    public var data: JSONValue? {
        if let j = json { return j }
        return text.map(JSONValue.string)
    }

    public var count: Int { bytes.count }
}
