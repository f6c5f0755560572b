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
    /// The properties, held by one reference (nil: none set): a message is copied at every hop of a delivery
    /// (into its delivery, out to the handler), and a reference copies in one retain where the fields take one
    /// each. Messages that carry only a delivery mode share one of two immutable boxes.
    private var propertiesBox: PropertiesBox?

    public var properties: MessageProperties {
        get { propertiesBox?.value ?? MessageProperties() }
        set { propertiesBox = PropertiesBox.holding(newValue) }
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Properties of a delivery mode alone (what most messages carry), set without building them.
    package mutating func setDeliveryModeOnly(persistent: Bool) {
        propertiesBox = persistent ? PropertiesBox.persistent : PropertiesBox.transient
    }
    public init(bytes: [UInt8], properties: MessageProperties) {
        self.bytes = bytes
        self.propertiesBox = PropertiesBox.holding(properties)
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

/// The immutable holder of a message's properties.
private final class PropertiesBox: Sendable {
    let value: MessageProperties

    init(_ value: MessageProperties) { self.value = value }

    static let persistent = PropertiesBox(MessageProperties(persistent: true))
    static let transient = PropertiesBox(MessageProperties(persistent: false))

    /// The box for `p`: none when it is empty, a shared one when it sets only the delivery mode.
    static func holding(_ p: MessageProperties) -> PropertiesBox? {
        var rest = p
        rest.persistent = nil
        guard rest.isEmpty else { return PropertiesBox(p) }
        switch p.persistent {
        case nil: return nil
        case true?: return persistent
        case false?: return transient
        }
    }
}
