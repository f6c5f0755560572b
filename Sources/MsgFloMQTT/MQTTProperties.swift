import CMosquitto
import Foundation
import MsgFlo

/// Message properties as MQTT 5 publish properties: reply-to is the response topic, the correlation id the
/// correlation data, the content type and the expiry (whole seconds, rounded up) their own properties, headers
/// user properties (values as text: `true`/`false` and integers read back as booleans and numbers). Message id,
/// timestamp, priority and persistence, which MQTT 5 has no property for, travel as the user properties
/// `msgflo-message-id`, `msgflo-timestamp`, `msgflo-priority`, `msgflo-persistent`, and are read back into their
/// fields.
enum MQTTProperties {
    static let messageIDKey = "msgflo-message-id"
    static let timestampKey = "msgflo-timestamp"
    static let priorityKey = "msgflo-priority"
    static let persistentKey = "msgflo-persistent"

    private static func id(_ p: mqtt5_property) -> Int32 { Int32(p.rawValue) }

    /// A property list for `mosquitto_publish_v5` (free it with `mosquitto_property_free_all`), nil for none.
    /// `p` was checked (``MessageProperties/check(what:)``) by the caller.
    static func encode(_ p: MessageProperties) throws(MsgFloError) -> OpaquePointer? {
        var list: OpaquePointer? = nil
        var rc = MosquittoStatus.success
        func ok(_ r: Int32) { if rc == MosquittoStatus.success { rc = r } }
        if let v = p.contentType { ok(mosquitto_property_add_string(&list, id(MQTT_PROP_CONTENT_TYPE), v)) }
        if let v = p.replyTo { ok(mosquitto_property_add_string(&list, id(MQTT_PROP_RESPONSE_TOPIC), v)) }
        if let v = p.correlationID {
            let bytes = Array(v.utf8)
            ok(bytes.withUnsafeBytes {
                mosquitto_property_add_binary(&list, id(MQTT_PROP_CORRELATION_DATA), $0.baseAddress, UInt16(bytes.count))
            })
        }
        if let v = p.expirationMilliseconds {
            let seconds = UInt32(clamping: (v + 999) / 1000)
            ok(mosquitto_property_add_int32(&list, id(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL), max(1, seconds)))
        }
        var pairs: [(String, String)] = p.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value.description) }
        if let v = p.messageID { pairs.append((messageIDKey, v)) }
        if let v = p.timestamp { pairs.append((timestampKey, String(v))) }
        if let v = p.priority { pairs.append((priorityKey, String(v))) }
        if let v = p.persistent { pairs.append((persistentKey, v ? "true" : "false")) }
        for (k, v) in pairs { ok(mosquitto_property_add_string_pair(&list, id(MQTT_PROP_USER_PROPERTY), k, v)) }
        if rc != MosquittoStatus.success {
            mosquitto_property_free_all(&list)
            throw MsgFloError(.invalidArgument, "MQTT 5 properties could not be encoded: \(String(cString: mosquitto_strerror(rc)))")
        }
        return list
    }

    /// The properties of a received publish. Values that are not valid UTF-8, hold NUL or are over their limit are
    /// left out and counted in `skipped`.
    static func decode(_ props: OpaquePointer?, skipped: inout Int) -> MessageProperties {
        var p = MessageProperties()
        guard let props else { return p }
        func take(_ raw: UnsafeMutablePointer<CChar>?, limit: Int = MessageProperties.shortLimit) -> String? {
            guard let raw else { return nil }
            defer { free(raw) }
            let s = MessageProperties.networkString(UnsafeRawBufferPointer(start: raw, count: strlen(raw)), limit: limit)
            if s == nil { skipped += 1 }
            return s
        }
        var text: UnsafeMutablePointer<CChar>? = nil
        if mosquitto_property_read_string(props, id(MQTT_PROP_CONTENT_TYPE), &text, false) != nil {
            p.contentType = take(text)
        }
        text = nil
        if mosquitto_property_read_string(props, id(MQTT_PROP_RESPONSE_TOPIC), &text, false) != nil {
            p.replyTo = take(text)
        }
        var data: UnsafeMutableRawPointer? = nil
        var length: UInt16 = 0
        if mosquitto_property_read_binary(props, id(MQTT_PROP_CORRELATION_DATA), &data, &length, false) != nil,
           let data {
            defer { free(data) }
            p.correlationID = MessageProperties.networkString(UnsafeRawBufferPointer(start: data, count: Int(length)))
            if p.correlationID == nil { skipped += 1 }
        }
        var expiry: UInt32 = 0
        if mosquitto_property_read_int32(props, id(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL), &expiry, false) != nil {
            p.expirationMilliseconds = UInt64(expiry) * 1000
        }
        var name: UnsafeMutablePointer<CChar>? = nil
        var value: UnsafeMutablePointer<CChar>? = nil
        var cursor = mosquitto_property_read_string_pair(props, id(MQTT_PROP_USER_PROPERTY), &name, &value, false)
        var seen = 0
        while let at = cursor {
            seen += 1
            let k = take(name)
            let v = take(value, limit: MessageProperties.valueLimit)
            name = nil
            value = nil
            if let k, let v, !k.isEmpty, seen <= MessageProperties.maxHeaders + 4 {
                switch k {
                case messageIDKey: p.messageID = v.utf8.count <= MessageProperties.shortLimit ? v : nil
                case timestampKey: p.timestamp = UInt64(v)
                case priorityKey: p.priority = UInt8(v).flatMap { $0 <= 9 ? $0 : nil }
                case persistentKey: p.persistent = v == "true"
                default:
                    if p.headers.count < MessageProperties.maxHeaders { p.headers[k] = .init(parsing: v) }
                    else { skipped += 1 }
                }
            } else if k != nil && v != nil {
                skipped += 1
            }
            cursor = mosquitto_property_read_string_pair(at, id(MQTT_PROP_USER_PROPERTY), &name, &value, true)
        }
        return p
    }
}
