/// A parsed broker address: `amqp://user:pass@host:port/vhost?options`, `amqps://…`, `mqtt://…`, `mqtts://…`.
///
/// Several addresses of one broker (a cluster): `amqp://user:pass@h1:5672,h2:5672,h3/vhost` — the user, password,
/// vhost and options apply to each; transports connect to the first that answers (`?shuffle=true`: in a random
/// order) and fail over to the next when the connection is lost (`endpoints`, `at(_:)`).
///
/// `description` never shows the password: `amqp://user:***@host:5672/`.
public struct BrokerURL: Sendable, Hashable, CustomStringConvertible {
    /// One address of a broker.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
    }

    /// Most addresses one URL may list.
    public static let maxEndpoints = 64

    public enum Scheme: String, Sendable, Hashable, CaseIterable {
        case amqp, amqps, mqtt, mqtts

        public var isAMQP: Bool { self == .amqp || self == .amqps }
        public var isMQTT: Bool { self == .mqtt || self == .mqtts }
        public var usesTLS: Bool { self == .amqps || self == .mqtts }
        public var defaultPort: Int {
            switch self {
            case .amqp: 5672
            case .amqps: 5671
            case .mqtt: 1883
            case .mqtts: 8883
            }
        }
    }

    public var scheme: Scheme
    /// nil when the URL names no user (AMQP then logs in as guest/guest; MQTT connects anonymously).
    public var user: String?
    public var password: String?
    public var host: String
    public var port: Int
    /// AMQP virtual host; "/" when the URL has no path. Not used on MQTT.
    public var vhost: String
    /// Query options in the order written (`?qos=1&clientId=x`). Keys are case-sensitive.
    public var options: [(key: String, value: String)]
    /// The addresses after the first (`host`, `port`) of a URL listing several; empty for a single address.
    public var alternates: [Endpoint] = []

    /// Every address of the URL, the first (`host`, `port`) first.
    public var endpoints: [Endpoint] { [Endpoint(host: host, port: port)] + alternates }

    /// The addresses in the order a transport tries them: as written, or shuffled with `?shuffle=true`.
    public func connectionOrder() -> [Endpoint] {
        boolOption("shuffle") == true ? endpoints.shuffled() : endpoints
    }

    /// This URL at one of its addresses only (what a transport connects to and names in its messages).
    public func at(_ endpoint: Endpoint) -> BrokerURL {
        var u = self
        u.host = endpoint.host
        u.port = endpoint.port
        u.alternates = []
        return u
    }

    public init(scheme: Scheme, user: String? = nil, password: String? = nil, host: String = "localhost",
                port: Int? = nil, vhost: String = "/", options: [(key: String, value: String)] = []) {
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port ?? scheme.defaultPort
        self.vhost = vhost
        self.options = options
    }

    /// The default broker of every msgflo program.
    public static let fallback = "amqp://localhost"

    /// Resolves the broker as every msgflo program does: the explicit argument, else `MSGFLO_BROKER`, else
    /// `CLOUDAMQP_URL`, else `amqp://localhost`. A source that is given must hold a URL: an empty or malformed one is
    /// an error naming it, never a reason to try the next source (a typo must not send traffic to another broker).
    public static func resolve(_ argument: String?, environment: [String: String]) throws(MsgFloError) -> BrokerURL {
        let sources = [("--broker", argument), ("MSGFLO_BROKER", environment["MSGFLO_BROKER"]),
                       ("CLOUDAMQP_URL", environment["CLOUDAMQP_URL"])]
        for case let (name, candidate?) in sources {
            if candidate.allSatisfy(\.isWhitespace) {
                throw MsgFloError(.invalidURL, "\(name) is empty: give a broker URL (amqp://host, mqtt://host, …)"
                                  + (name == "--broker" ? " or leave --broker out" : " or unset \(name)"))
            }
            do { return try BrokerURL(parsing: candidate) } catch {
                throw MsgFloError(.invalidURL, "\(name): \(error.message)")
            }
        }
        return try BrokerURL(parsing: fallback)
    }

    /// Parses a broker URL. Errors are one line and never contain the password, even when the user-info holds an
    /// unencoded `/ ? # @` and so cannot be told apart from the rest: then everything up to the last `@` is hidden.
    public init(parsing text: String) throws(MsgFloError) {
        // Everything before the last "@" may be user-info: a piece of the text from there is never echoed.
        let secretEnd = text.lastIndex(of: "@")
        let userinfoStart = text.firstRange(of: "://").map(\.upperBound) ?? text.startIndex
        let encodeHint = secretEnd.map { at in
            userinfoStart < at && text[userinfoStart..<at].contains(where: { "/?#@".contains($0) })
                ? " (a '/', '?', '#' or '@' in a user name or password must be percent-encoded: %2F, %3F, %23, %40)" : ""
        } ?? ""
        func fail(_ why: String) -> MsgFloError {
            MsgFloError(.invalidURL, "invalid broker URL '\(SafeText.escape(BrokerURL.redact(text), limit: 256))': \(why)"
                        + encodeHint)
        }
        /// ` 'piece'` for a message, or nothing when the piece may be part of a password.
        func quoted(_ piece: Substring) -> String {
            if let secretEnd, piece.startIndex < secretEnd { return "" }
            return " '\(SafeText.escape(piece, limit: 64))'"
        }
        guard let sep = text.firstRange(of: "://") else {
            throw fail("expected scheme://host (amqp, amqps, mqtt or mqtts)")
        }
        let schemeText = text[..<sep.lowerBound].lowercased()
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw fail("unsupported scheme '\(SafeText.escape(schemeText, limit: 32))', expected amqp, amqps, mqtt or mqtts")
        }
        var rest = Substring(text[sep.upperBound...])
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var query = Substring("")
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring? = nil
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user: String? = nil
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                user = try BrokerURL.percentDecode(userinfo[..<colon], fail)
                password = try BrokerURL.percentDecode(userinfo[userinfo.index(after: colon)...], fail)
            } else {
                user = try BrokerURL.percentDecode(userinfo, fail)
            }
        }
        var parsed: [Endpoint] = []
        for piece in rest.split(separator: ",", omittingEmptySubsequences: false) {
            guard parsed.count < BrokerURL.maxEndpoints else {
                throw fail("more than \(BrokerURL.maxEndpoints) addresses")
            }
            if piece.isEmpty, rest.contains(",") { throw fail("an empty address in the list of hosts") }
            parsed.append(try BrokerURL.parseEndpoint(piece, scheme: scheme, fail: fail, quoted: quoted))
        }
        if text[sep.upperBound...].drop(while: { !"/?#".contains($0) }).contains("@") {
            // `amqp://user:pa/ss@host`: a password ran into the path, query or fragment. Refuse rather than connect
            // to host "user" (an '@' in a vhost or an option is written %40).
            throw fail("'@' after the host")
        }
        var vhost = "/"
        if let path, !path.isEmpty {
            vhost = try BrokerURL.percentDecode(path, fail)
        }
        var options: [(key: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = pair.firstIndex(of: "=") {
                options.append((try BrokerURL.percentDecode(pair[..<eq], fail),
                                try BrokerURL.percentDecode(pair[pair.index(after: eq)...], fail)))
            } else {
                options.append((try BrokerURL.percentDecode(pair, fail), ""))
            }
        }
        self.init(scheme: scheme, user: user, password: password, host: parsed[0].host, port: parsed[0].port,
                  vhost: vhost, options: options)
        alternates = Array(parsed.dropFirst())
    }

    /// `host[:port]` or `[v6][:port]`, one address of the list.
    private static func parseEndpoint(_ piece: Substring, scheme: Scheme, fail: (String) -> MsgFloError,
                                      quoted: (Substring) -> String) throws(MsgFloError) -> Endpoint {
        var host = piece
        var port: Int? = nil
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            let after = host[host.index(after: close)...]
            let inner = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") {
                port = try BrokerURL.parsePort(after.dropFirst()) { fail("invalid port\(quoted($0))") }
            } else if !after.isEmpty {
                throw fail("unexpected text\(quoted(after)) after IPv6 address")
            }
            host = inner
        } else if let colon = host.lastIndex(of: ":") {
            port = try BrokerURL.parsePort(host[host.index(after: colon)...]) { fail("invalid port\(quoted($0))") }
            host = host[..<colon]
        }
        let hostName = try BrokerURL.percentDecode(host, fail)
        guard !hostName.isEmpty else { throw fail("missing host") }
        if hostName.contains(where: { $0 == " " || $0 == "/" }) { throw fail("invalid host\(quoted(host))") }

        return Endpoint(host: hostName, port: port ?? scheme.defaultPort)
    }

    /// The value of a query option, the last one written if it is repeated.
    public func option(_ key: String) -> String? {
        options.last(where: { $0.key == key })?.value
    }

    /// An option read as a boolean: 1/true/yes/on and 0/false/no/off.
    public func boolOption(_ key: String) -> Bool? {
        guard let v = option(key)?.lowercased() else { return nil }
        switch v {
        case "1", "true", "yes", "on", "": return true
        case "0", "false", "no", "off": return false
        default: return nil
        }
    }

    public var description: String { render(password: password == nil ? nil : "***") }

    /// The full URL with the password, for handing to a child process. Never print it.
    public var unredacted: String { render(password: password.map(BrokerURL.percentEncode)) }

    private func render(password pw: String?) -> String {
        var s = scheme.rawValue + "://"
        if let user {
            s += BrokerURL.percentEncode(user)
            if let pw { s += ":" + pw }
            s += "@"
        }
        s += endpoints.map(\.description).joined(separator: ",")
        if scheme.isAMQP {
            s += "/" + (vhost == "/" ? "" : BrokerURL.percentEncode(vhost))
        }
        if !options.isEmpty {
            s += "?" + options.map { "\(BrokerURL.percentEncode($0.key))=\(BrokerURL.percentEncode($0.value))" }
                .joined(separator: "&")
        }
        return s
    }

    public static func == (a: BrokerURL, b: BrokerURL) -> Bool {
        a.unredacted == b.unredacted
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(unredacted) }

    /// Replaces the user-info of text that did not parse as a URL with `***`, for error messages. The user-info is
    /// taken to be everything between `://` (or the start) and the last `@`: a password may hold an unencoded
    /// `/ ? # @`, and then nothing else tells where it ends.
    public static func redact(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        let start = text.firstRange(of: "://").map(\.upperBound) ?? text.startIndex
        guard start <= at else { return text }
        return String(text[..<start]) + "***" + String(text[at...])
    }

    /// `text` with the user-info of every `scheme://user:pass@…` in it replaced by `***` (up to the last `@` before
    /// the next white space): the last guard of every error line and log line, for messages that quote a command
    /// line or a URL someone else wrote (ArgumentParser's "Unexpected argument 'amqp://…'").
    public static func redactCredentials(in text: String) -> String {
        guard text.contains("://"), text.contains("@") else { return text }
        var out = ""
        var rest = Substring(text)
        while let sep = rest.firstRange(of: "://") {
            out += rest[..<sep.upperBound]
            let after = rest[sep.upperBound...]
            let end = after.firstIndex(where: \.isWhitespace) ?? after.endIndex
            if let at = after[..<end].lastIndex(of: "@") {
                out += "***"
                rest = after[at...]
            } else {
                rest = after
            }
        }
        return out + rest
    }

    private static func parsePort(_ s: Substring, _ fail: (Substring) -> MsgFloError) throws(MsgFloError) -> Int? {
        if s.isEmpty { return nil }
        guard s.allSatisfy(\.isASCII), let p = Int(s), (1...65535).contains(p) else {
            throw fail(s)
        }
        return p
    }

    private static func percentDecode(_ s: Substring, _ fail: (String) -> MsgFloError) throws(MsgFloError) -> String {
        guard s.contains("%") else { return String(s) }
        var bytes: [UInt8] = []
        var utf8 = Array(s.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%") {
                guard utf8.count >= 2, let hi = hexValue(utf8.removeFirst()), let lo = hexValue(utf8.removeFirst())
                else { throw fail("bad percent-escape") }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Every byte outside RFC 3986's unreserved set percent-encoded (a URL's user-info, vhost, or one path segment).
    public static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(hex[Int(b >> 4)])
                out.unicodeScalars.append(hex[Int(b & 15)])
            }
        }
        return out
    }
}
