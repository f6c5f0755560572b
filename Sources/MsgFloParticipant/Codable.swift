import Foundation

extension Message {
    /// A message whose body is the JSON encoding of `value` (Codable), keys in declaration order.
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        self.init(bytes: Array(try encoder.encode(value)))
    }

    /// The body decoded from JSON as `T`. The error says what did not fit, and where.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let e as DecodingError {
            throw MsgFloError(.invalidMessage, "message is not a \(T.self): \(Self.describe(e))")
        }
    }

    private static func describe(_ e: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "" : " at \(SafeText.escape(p, limit: 120))"
        }
        switch e {
        case .keyNotFound(let key, let c): return "key '\(SafeText.escape(key.stringValue, limit: 60))' missing\(path(c))"
        case .typeMismatch(let t, let c): return "expected \(t)\(path(c))"
        case .valueNotFound(let t, let c): return "expected \(t), found null\(path(c))"
        case .dataCorrupted(let c): return "not JSON\(path(c))"
        @unknown default: return "cannot decode"
        }
    }
}
