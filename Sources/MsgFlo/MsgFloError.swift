/// The one error type of the project's libraries.
///
/// `code` is an open set (a struct, not an enum) so that new kinds of failure never break callers that switch on
/// the ones they know. `description` is always a single line that says what went wrong and where; it never contains a
/// password (URLs are printed redacted).
public struct MsgFloError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let invalidURL = Code("invalid URL")
        public static let invalidArgument = Code("invalid argument")
        public static let invalidMessage = Code("invalid message")
        public static let connectionFailed = Code("connection failed")
        public static let connectionLost = Code("connection lost")
        public static let closed = Code("closed")
        public static let timeout = Code("timeout")
        public static let preconditionFailed = Code("precondition failed")
        public static let notFound = Code("not found")
        public static let accessRefused = Code("access refused")
        public static let protocolError = Code("protocol error")
        public static let tls = Code("TLS")
        public static let unsupported = Code("unsupported")
        /// The other end does not speak the protocol asked for (plain AMQP or MQTT to a TLS port, or to another
        /// service).
        public static let wrongProtocol = Code("wrong protocol")
    }

    /// A failure to connect that trying again will not cure: refused credentials or virtual host, TLS
    /// verification, the wrong protocol for the port. Programs starting up report it and exit rather than retry.
    public var isConfigurationError: Bool {
        code == .accessRefused || code == .tls || code == .wrongProtocol
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        // Keep errors one line: users read them in logs and terminals.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    public var description: String { message }
}
