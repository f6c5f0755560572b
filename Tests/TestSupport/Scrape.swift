import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// One sample of a Prometheus text exposition: `name{label="v",…} value`.
public struct MetricSample: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var value: Double
}

/// A strict reader of the Prometheus text format (0.0.4) as far as the tests need it: `# HELP`/`# TYPE` lines,
/// samples with quoted, escaped label values. A line it cannot read is an error, so a malformed exposition fails.
public enum PrometheusText {
    public struct Malformed: Error, CustomStringConvertible { public var description: String }

    public static func parse(_ text: String) throws -> [MetricSample] {
        var out: [MetricSample] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = Substring(raw)
            if line.hasPrefix("#") {
                guard line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") else { throw Malformed(description: "comment: \(line)") }
                continue
            }
            var i = line.startIndex
            while i < line.endIndex, line[i].isLetter || line[i].isNumber || line[i] == "_" || line[i] == ":" { i = line.index(after: i) }
            let name = String(line[..<i])
            guard !name.isEmpty, !(name.first!.isNumber) else { throw Malformed(description: "name: \(line)") }
            var labels: [String: String] = [:]
            if i < line.endIndex, line[i] == "{" {
                i = line.index(after: i)
                while i < line.endIndex, line[i] != "}" {
                    let ks = i
                    while i < line.endIndex, line[i] != "=" { i = line.index(after: i) }
                    let key = String(line[ks..<i]).trimmingCharacters(in: .whitespaces)
                    i = line.index(after: i)
                    guard i < line.endIndex, line[i] == "\"" else { throw Malformed(description: "label: \(line)") }
                    i = line.index(after: i)
                    var value = ""
                    while i < line.endIndex, line[i] != "\"" {
                        if line[i] == "\\" {
                            i = line.index(after: i)
                            guard i < line.endIndex else { throw Malformed(description: "escape: \(line)") }
                            value.append(line[i] == "n" ? "\n" : line[i])
                        } else {
                            value.append(line[i])
                        }
                        i = line.index(after: i)
                    }
                    guard i < line.endIndex else { throw Malformed(description: "unterminated: \(line)") }
                    labels[key] = value
                    i = line.index(after: i)
                    if i < line.endIndex, line[i] == "," { i = line.index(after: i) }
                }
                guard i < line.endIndex else { throw Malformed(description: "labels: \(line)") }
                i = line.index(after: i)
            }
            let rest = line[i...].trimmingCharacters(in: .whitespaces).split(separator: " ")
            guard let first = rest.first, let value = Double(first == "+Inf" ? "inf" : String(first)) else {
                throw Malformed(description: "value: \(line)")
            }
            out.append(MetricSample(name: name, labels: labels, value: value))
        }
        return out
    }
}

extension Array where Element == MetricSample {
    /// The value of the sample named `name` whose labels include `labels` (nil: none).
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        first { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }?.value
    }
}

/// GET over HTTP: status and body text (status 0 and the error when nothing answered).
public func httpGet(_ url: String, timeout: Double = 10) async -> (status: Int, body: String) {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = timeout
    do {
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    } catch {
        return (0, "\(error)")
    }
}

/// A TCP port that was free a moment ago (bound to port 0 on 127.0.0.1, then closed).
public func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
