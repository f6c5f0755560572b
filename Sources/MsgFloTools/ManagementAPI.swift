import Foundation
import MsgFlo
import NIOCore
import NIOHTTP1
import NIOPosix

/// RabbitMQ's management HTTP API, as far as msgflo-queues needs it: one queue's counters
/// (`GET /api/queues/VHOST/NAME`). Plain HTTP only (the API on loopback or behind a TLS-terminating proxy). The
/// password is sent in the Authorization header and never printed: ``description`` and every error name the API
/// by ``redacted``.
package struct ManagementAPI: Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int
    /// The plugin's `management.path_prefix` (empty, or `/something` without a trailing slash).
    package var pathPrefix: String
    package var user: String
    package var password: String
    /// Seconds for connecting and for each answer.
    package var timeout: Duration = .seconds(3)
    /// An answer larger than this is refused (one queue's object with the columns asked for is under 1 KB).
    package static let maxResponseBytes = 64 * 1024

    /// What the API says of one queue. Each count is checked: a non-negative integer below 2^53, else nil.
    package struct QueueCounts: Sendable, Equatable {
        package var ready: Int?
        package var unacknowledged: Int?
        package var consumers: Int?
    }

    /// `http://HOST:PORT/PREFIX`, without credentials.
    package var redacted: String {
        "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(pathPrefix)/"
    }

    package var description: String { redacted }

    /// The API to ask for a broker: `given` (`--management`), else the one derived from the broker's URL; nil for
    /// MQTT brokers, which have none (and `--management` with one is an error). A decision about the URL itself,
    /// made before any transport exists.
    package static func forBroker(_ broker: BrokerURL, given: String?) throws(MsgFloError) -> ManagementAPI? {
        guard broker.scheme.isAMQP else {
            if given != nil { throw MsgFloError(.invalidArgument, "--management is for AMQP brokers (RabbitMQ); \(broker) is MQTT") }
            return nil
        }
        return try given.map { text throws(MsgFloError) in try parse(text, broker: broker) } ?? derived(from: broker)
    }

    /// The default: the broker's host, port 15672 (the plugin's default), the broker URL's credentials (guest/guest
    /// when it names no user, as AMQP's login does).
    package static func derived(from broker: BrokerURL) -> ManagementAPI {
        ManagementAPI(host: broker.host, port: 15672, pathPrefix: "", user: broker.user ?? "guest",
                      password: broker.password ?? (broker.user == nil ? "guest" : ""))
    }

    /// Parses `--management URL`: `http://[user[:password]@]host[:port][/prefix]`; credentials not in the URL are
    /// the broker's. The error never holds the password (the URL is redacted and escaped).
    package static func parse(_ text: String, broker: BrokerURL) throws(MsgFloError) -> ManagementAPI {
        func bad(_ why: String) -> MsgFloError {
            MsgFloError(.invalidURL, "--management '\(SafeText.escape(BrokerURL.redact(text), limit: 256))': \(why)")
        }
        guard text.utf8.count <= 2048 else { throw bad("longer than 2048 bytes") }
        guard let c = URLComponents(string: text), let scheme = c.scheme?.lowercased() else {
            throw bad("not a URL (http://HOST:PORT/)")
        }
        guard scheme == "http" else {
            throw bad(scheme == "https" ? "https is not supported (plain http://, e.g. on loopback)" : "the scheme must be http")
        }
        guard let host = c.host, !host.isEmpty else { throw bad("no host") }
        guard host.utf8.count <= 253, host.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && $0 != "/" }) else {
            throw bad("the host is not a host name or address")
        }
        let port = c.port ?? 80
        guard (1...65535).contains(port) else { throw bad("the port must be 1-65535") }
        guard c.query == nil, c.fragment == nil else { throw bad("no query or fragment allowed") }
        var prefix = c.percentEncodedPath
        while prefix.hasSuffix("/") { prefix.removeLast() }
        guard prefix.isEmpty || prefix.hasPrefix("/") else { throw bad("bad path") }
        let derived = derived(from: broker)
        let user = c.user ?? derived.user
        let password = c.password ?? (c.user == nil ? derived.password : "")
        return ManagementAPI(host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: port,
                             pathPrefix: prefix, user: user, password: password)
    }

    /// One path segment: every byte outside RFC 3986's unreserved set percent-encoded (a vhost `/` is `%2F`).
    static func segment(_ s: String) -> String { BrokerURL.percentEncode(s) }

    /// The path of one queue's object, with only the columns used.
    func queuePath(vhost: String, name: String) -> String {
        "\(pathPrefix)/api/queues/\(Self.segment(vhost))/\(Self.segment(name))"
            + "?columns=name,vhost,messages_ready,messages_unacknowledged,consumers"
    }

    /// One queue's counters; nil when the API says there is no such queue (404). Throws `.connectionFailed` when
    /// nothing answers (refused, timeout), `.accessRefused` on 401, `.protocolError` for any other answer it cannot
    /// read.
    package func queue(vhost: String, name: String) async throws -> QueueCounts? {
        let (status, body) = try await get(queuePath(vhost: vhost, name: name))
        switch status {
        case 200: break
        case 404: return nil
        case 401, 403: throw MsgFloError(.accessRefused, "the management API at \(redacted) refused user '\(SafeText.escape(user, limit: 64))' (HTTP \(status))")
        default: throw MsgFloError(.protocolError, "the management API at \(redacted) answered HTTP \(status)")
        }
        let j: JSONValue
        do { j = try JSONValue(parsing: body) } catch {
            throw MsgFloError(.protocolError, "the management API at \(redacted) answered something that is not JSON")
        }
        // The answer is checked, not trusted: the queue it names must be the one asked for.
        guard j.objectValue != nil, j["name"]?.stringValue == name,
              j["vhost"].map({ $0.stringValue == vhost }) ?? true else {
            throw MsgFloError(.protocolError, "the management API at \(redacted) answered about another queue")
        }
        func count(_ key: String) -> Int? {
            guard let v = j[key], let n = v.intValue, n >= 0, n < 1 << 53 else { return nil }
            return n
        }
        return QueueCounts(ready: count("messages_ready"), unacknowledged: count("messages_unacknowledged"),
                           consumers: count("consumers"))
    }

    // MARK: HTTP/1.1 GET over NIO

    func get(_ path: String) async throws -> (status: Int, body: [UInt8]) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "\(host.contains(":") ? "[\(host)]" : host):\(port)")
        head.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        head.headers.add(name: "Accept", value: "application/json")
        head.headers.add(name: "Connection", value: "close")
        let request = head
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: ManagementResponse.self)
        let limit = Self.maxResponseBytes
        let timeout = TimeAmount.nanoseconds(Int64(self.timeout.components.seconds) * 1_000_000_000
                                             + self.timeout.components.attoseconds / 1_000_000_000)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            ManagementResponseReader(request: request, promise: promise, limit: limit))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw MsgFloError(.connectionFailed, "the management API at \(redacted) does not answer (\(Self.reason(error)))")
        }
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(MsgFloError(.timeout, "no answer within \(self.timeout.seconds) s"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            // A cancelled caller (a deadline) ends the request at once.
            let r = try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(MsgFloError(.cancelled, "request to the management API cancelled"))
                channel.close(promise: nil)
            }
            return (r.status, r.body)
        } catch let e as MsgFloError where e.code == .protocolError {
            throw MsgFloError(.protocolError, "the management API at \(redacted): \(e.message)")
        } catch {
            throw MsgFloError(.connectionFailed, "the management API at \(redacted) does not answer (\(Self.reason(error)))")
        }
    }

    /// A short reason for a failed connection, without addresses or text from the other side.
    static func reason(_ error: any Error) -> String {
        if let e = error as? MsgFloError { return e.message }
        if error is ChannelError { return "connection closed or timed out" }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        let text = "\(error)"
        if text.contains("connectTimeout") { return "connect timeout" }
        if text.contains("refused") { return "connection refused" }
        return SafeText.escape(String(text.prefix(120)), limit: 120)
    }
}

struct ManagementResponse: Sendable {
    var status: Int
    var body: [UInt8]
}

/// Sends the request when the connection is up and collects the answer, refusing one larger than `limit`.
final class ManagementResponseReader: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let request: HTTPRequestHead
    private let promise: EventLoopPromise<ManagementResponse>
    private let limit: Int
    private var status = 0
    private var body: [UInt8] = []

    init(request: HTTPRequestHead, promise: EventLoopPromise<ManagementResponse>, limit: Int) {
        self.request = request
        self.promise = promise
        self.limit = limit
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(request)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            status = Int(h.status.code)
            if let length = h.headers.first(name: "Content-Length").flatMap(Int.init), length > limit {
                fail(context, "an answer of \(length) bytes (at most \(limit) taken)")
            }
        case .body(let buffer):
            guard body.count + buffer.readableBytes <= limit else {
                fail(context, "an answer over \(limit) bytes")
                return
            }
            body += buffer.readableBytesView
        case .end:
            promise.succeed(ManagementResponse(status: status, body: body))
            context.close(promise: nil)
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ why: String) {
        promise.fail(MsgFloError(.protocolError, why))
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}
