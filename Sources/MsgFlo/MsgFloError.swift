/// The one error type of the project's libraries.
///
/// `code` is an open set (a struct, not an enum) so that new kinds of failure never break callers that switch on
/// the ones they know. `description` is always a single line that says what went wrong and where; it never contains a
/// password (URLs are printed redacted).
public struct MsgFloError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure: one of the constants below. Opaque (as grpc-swift's and postgres-nio's error codes):
    /// callers compare codes but cannot make new ones, so a `switch` over them stays meaningful as codes are added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String, Sendable {
            case invalidURL = "invalid URL", invalidArgument = "invalid argument", invalidMessage = "invalid message"
            case connectionFailed = "connection failed", connectionLost = "connection lost", closed
            case timeout, preconditionFailed = "precondition failed", notFound = "not found"
            case accessRefused = "access refused", protocolError = "protocol error", tls = "TLS", unsupported
            case wrongProtocol = "wrong protocol", io = "I/O error", cancelled
        }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }
        public var description: String { kind.rawValue }

        public static let invalidURL = Code(.invalidURL)
        public static let invalidArgument = Code(.invalidArgument)
        public static let invalidMessage = Code(.invalidMessage)
        public static let connectionFailed = Code(.connectionFailed)
        public static let connectionLost = Code(.connectionLost)
        public static let closed = Code(.closed)
        public static let timeout = Code(.timeout)
        public static let preconditionFailed = Code(.preconditionFailed)
        public static let notFound = Code(.notFound)
        public static let accessRefused = Code(.accessRefused)
        public static let protocolError = Code(.protocolError)
        public static let tls = Code(.tls)
        public static let unsupported = Code(.unsupported)
        /// The other end does not speak the protocol asked for (plain AMQP or MQTT to a TLS port, or to another
        /// service).
        public static let wrongProtocol = Code(.wrongProtocol)
        /// A local file or descriptor failed (writing the graph file back, …).
        public static let io = Code(.io)
        /// The calling task was cancelled while the call waited (for the broker's answer, a reconnect, room in the
        /// send buffer, a connection). Transports fail such a call at once with this code rather than let it wait
        /// out its timeout; what it had queued and no thread had begun is dropped (each transport says what happens
        /// to work already under way). Distinct from `.timeout` (nobody gave up: the broker was too slow) and
        /// `.closed` (the transport went away).
        public static let cancelled = Code(.cancelled)
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
