#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import MsgFlo

/// A TCP port on 127.0.0.1 that takes connections and never answers: the kernel completes each connection (up to
/// the listen backlog) and nothing reads or writes it. A transport connecting there waits for the broker's first
/// words until its connect timeout: what ``TransportFactory/unanswered`` needs to make a call wait without taking a
/// real broker away. The port closes when the object goes.
public final class UnansweringServer: Sendable {
    public let port: Int
    private let fd: Int32

    public init() throws(MsgFloError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MsgFloError(.io, "socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw MsgFloError(.io, "bind/listen on 127.0.0.1: \(String(cString: strerror(e)))")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}
