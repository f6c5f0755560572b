import Foundation
import MsgFlo
import Yams

/// `msgflo-register`: discovery messages on behalf of participants that cannot send their own ("foreign"
/// participants: devices, programs in other languages), described in YAML.
package enum Register {
    /// One `--role ROLE:file.yaml` argument. Split on the first ':' (a path may contain more).
    package struct RoleFile: Sendable, Equatable {
        package var role: String
        package var path: String

        package init(role: String, path: String) {
            self.role = role
            self.path = path
        }

        package init(parsing text: String) throws {
            guard let colon = text.firstIndex(of: ":") else {
                throw ToolFailure("--role '\(text)': expected ROLE:FILE.yaml")
            }
            role = String(text[..<colon])
            path = String(text[text.index(after: colon)...])
            if role.isEmpty { throw ToolFailure("--role '\(text)': the role is empty, expected ROLE:FILE.yaml") }
            if path.isEmpty { throw ToolFailure("--role '\(text)': the file is empty, expected ROLE:FILE.yaml") }
        }
    }

    /// Reads a definition file for a role.
    package static func definition(_ file: RoleFile, heartbeat: Double? = nil) throws -> ParticipantDefinition {
        let text = try FileAccess.read(file.path, what: "definition")
        return try definition(yaml: text, role: file.role, path: file.path, heartbeat: heartbeat)
    }

    /// The participant a YAML definition describes, with `role` set, `id` = role unless the file gives one, ports
    /// given as a map (`{in: {queue: …}}`, id = key) or a list (`[{id: in, queue: …}]`), `#ROLE` replaced in queue
    /// names, and a port without a queue given msgflo's default one, `<role>.<PORT>`.
    package static func definition(yaml text: String, role: String, path: String,
                                  heartbeat: Double? = nil) throws -> ParticipantDefinition {
        func fail(_ why: String) -> ToolFailure { ToolFailure("\(path): \(why)") }
        let loaded: Node?
        do {
            loaded = try Yams.compose(yaml: text)
        } catch {
            throw fail("invalid YAML: \(String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))")
        }
        guard let loaded, loaded.scalar?.string.isEmpty != true || loaded.mapping != nil else {
            throw fail("No definition found")
        }
        guard let doc = loaded.mapping else { throw fail("expected a mapping at the top level") }
        guard let component = scalarString(doc["component"]), !component.isEmpty else {
            throw fail(".component is not defined")
        }
        let id = scalarString(doc["id"]).flatMap { $0.isEmpty ? nil : $0 } ?? role
        var definition = ParticipantDefinition(id: id, role: role, component: component)
        definition.label = scalarString(doc["label"]) ?? ""
        definition.icon = scalarString(doc["icon"]) ?? ""
        definition.inports = try ports(doc["inports"], key: "inports", role: role, fail: fail)
        definition.outports = try ports(doc["outports"], key: "outports", role: role, fail: fail)
        definition.heartbeat = heartbeat
        return definition
    }

    /// The `role` a definition file names itself (msgflo-register-foreign's fallback when no `--role` is given).
    package static func role(yaml text: String, path: String) throws -> String {
        let doc = (try? Yams.compose(yaml: text))??.mapping
        guard let doc else { throw ToolFailure("\(path): No definition found") }
        guard let component = scalarString(doc["component"]), !component.isEmpty else {
            throw ToolFailure("\(path): .component is not defined")
        }
        guard let role = scalarString(doc["role"]), !role.isEmpty else {
            throw ToolFailure("\(path): .role is not defined for component \(component) (give --role ROLE)")
        }
        return role
    }

    static func isNull(_ node: Node?) -> Bool {
        guard let node else { return true }
        return node.null != nil
    }

    static func ports(_ value: Node?, key: String, role: String, fail: (String) -> ToolFailure) throws -> [PortDefinition] {
        var entries: [(id: String?, body: Node.Mapping, at: String)] = []
        if isNull(value) { return [] }
        if let map = value?.mapping {
            // Map form: the key is the port id (kept in the file's order).
            for (k, v) in map {
                let name = scalarString(k) ?? ""
                if isNull(v) { entries.append((name, Node.Mapping([]), "\(key).\(name)")); continue }
                guard let body = v.mapping else { throw fail("\(key).\(name) must be a mapping") }
                entries.append((name, body, "\(key).\(name)"))
            }
        } else if let list = value?.sequence {
            // List form: each item names its own id (msgflo gives them ids "0", "1", …; we keep theirs).
            for (n, item) in list.enumerated() {
                guard let body = item.mapping else { throw fail("\(key)[\(n)] must be a mapping") }
                entries.append((nil, body, "\(key)[\(n)]"))
            }
        } else {
            throw fail("\(key) must be a mapping of port names or a list of ports")
        }
        var out: [PortDefinition] = []
        for entry in entries {
            guard let id = scalarString(entry.body["id"]) ?? entry.id, !id.isEmpty else {
                throw fail("\(entry.at) has no id")
            }
            var port = PortDefinition(id: id, type: scalarString(entry.body["type"]) ?? "any")
            let queue = scalarString(entry.body["queue"]).flatMap { $0.isEmpty ? nil : $0 }
                ?? PortDefinition.defaultQueue(role: role, port: id)
            port.queue = queue.replacingOccurrences(of: "#ROLE", with: role)
            port.description = scalarString(entry.body["description"])
            port.schema = scalarString(entry.body["schema"])
            port.hidden = entry.body["hidden"]?.bool ?? false
            if let options = entry.body["options"] { port.options = jsonValue(options) }
            if port.hidden { continue }
            out.append(port)
        }
        return out
    }

    static func scalarString(_ node: Node?) -> String? {
        guard let node, node.null == nil, let scalar = node.scalar else { return nil }
        return scalar.string
    }

    static func jsonValue(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let s):
            if node.null != nil { return .null }
            if let b = node.bool { return .bool(b) }
            if let i = node.int { return .int(i) }
            if let d = node.float { return .double(d) }
            return .string(s.string)
        case .sequence(let seq):
            return .array(seq.map(jsonValue))
        case .mapping(let map):
            var o: JSONObject = [:]
            for (k, v) in map { o[scalarString(k) ?? ""] = jsonValue(v) }
            return .object(o)
        case .alias:
            return .null
        }
    }

    /// Announces every definition once; prints `Sent discovery message for <id>` per role, as msgflo does.
    package static func announce(_ definitions: [ParticipantDefinition], over transport: any Transport,
                                print: (String) -> Void) async throws {
        for definition in definitions {
            // Dated, as the SDK's announcements (docs/protocol.md): never counted fresher than when it was sent.
            var dated = definition
            dated.timestamp = Date().timeIntervalSince1970
            try await transport.announce(dated)
            print("Sent discovery message for \(definition.id)")
        }
    }
}
