import Foundation
import MsgFlo

/// `#NAME` markers in command templates, replaced the way msgflo's library does it (src/library.coffee).
package enum Template {
    /// Replaces every `#NAME` (NAME upper-cased) with its value, one variable after the other in the given order,
    /// so a value may bring in markers that a later variable (or `#ROLE`/`#IIPS` at start time) replaces.
    ///
    /// msgflo builds a regular expression from the marker and passes the value to `String.replace`, so regex
    /// characters in a name and `$&`-style patterns in a value misbehave there; here both are taken literally.
    package static func expand(_ text: String, _ variables: [(name: String, value: String)]) -> String {
        var out = text
        for (name, value) in variables {
            let marker = "#" + name.uppercased()
            if out.contains(marker) { out = out.replacingOccurrences(of: marker, with: value) }
        }
        return out
    }
}

/// The `msgflo` part of a library file (package.json by default), normalized as msgflo's `normalizeConfig` does.
package struct LibraryConfig: Sendable {
    /// `msgflo.namespace`, else the package `name`. Directory components are named `<namespace>/<basename>`.
    package var namespace: String?
    /// `repository` (a string, or package.json's `repository.url`).
    package var repository: String?
    /// Component name → command template, in file order.
    package var components: [(name: String, template: String)]
    /// Variables in file order. Expanded into every template before anything else.
    package var variables: [(name: String, value: String)]
    /// File extension (with its dot) → command template for component files in the component directory.
    package var handlers: [String: String]
    /// The library file, when read from one (``load(path:)``): a configured command whose program is a relative
    /// path (`../.build/release/msgflo-participant`, `./run.sh`) is resolved against that file's folder, so it works
    /// from any working directory; the component directory's scan leaves the file out.
    package var path: String?

    /// msgflo's handlers for extensions the file does not name.
    package static let defaultHandlers: [String: String] = [
        ".yml": "msgflo-register --role #ROLE:#FILENAME",
        ".js": "msgflo-nodejs --name #ROLE #FILENAME",
        ".coffee": "msgflo-nodejs --name #ROLE #FILENAME",
        ".py": "msgflo-python #FILENAME #ROLE",
        ".json": "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS",
        ".fbp": "noflo-runtime-msgflo --name #ROLE --graph #COMPONENT --iips #IIPS",
    ]

    /// The language of a component file, from its extension (msgflo's `languageExtensions`).
    package static let languages: [String: String] = [
        ".py": "python", ".coffee": "coffeescript", ".js": "javascript", ".cpp": "c++", ".rs": "rust", ".yml": "yaml",
    ]

    package init(namespace: String? = nil, repository: String? = nil,
                components: [(name: String, template: String)] = [],
                variables: [(name: String, value: String)] = [], handlers: [String: String] = [:]) {
        self.namespace = namespace
        self.repository = repository
        self.components = components
        self.variables = variables
        var h = handlers
        for (ext, cmd) in Self.defaultHandlers where (h[ext] ?? "").isEmpty { h[ext] = cmd }
        self.handlers = h
    }

    /// Reads the text of a library file: its `msgflo` key if it has one, else the whole document.
    package init(json text: String, source: String = "library") throws(MsgFloError) {
        let doc: JSONValue
        // (msgflo expands `variables` in file order, a later one may use an earlier one's marker: JSONValue keeps it)
        do { doc = try JSONValue(parsing: text, maximumDepth: Self.maximumDepth) } catch {
            throw MsgFloError(.invalidArgument, "\(source): \(error.message)")
        }
        try self.init(document: doc, source: source)
    }

    /// How deep a library file may nest (a library is a few levels deep; a hostile one stops here).
    static let maximumDepth = 256

    package init(document root: JSONValue, source: String = "library") throws(MsgFloError) {
        let top: JSONValue = root.isTruthy ? root : .object([:])
        var namespace: String? = nil
        if let name = top["name"], name.isTruthy { namespace = name.javaScriptString }
        var repository: String? = top["repository"]?.stringValue
        if let url = top["repository"]?["url"], url.isTruthy { repository = url.javaScriptString }
        var config = top
        if let m = top["msgflo"], m.isTruthy { config = m }
        guard case .object = config else {
            throw MsgFloError(.invalidArgument, "\(source): expected a JSON object")
        }
        if let r = config["repository"]?.stringValue { repository = r }
        if let ns = config["namespace"], ns != .null { namespace = ns.javaScriptString }

        func table(_ key: String) throws(MsgFloError) -> [(name: String, value: String)] {
            guard let v = config[key], v.isTruthy else { return [] }
            guard let entries = v.objectValue else {
                throw MsgFloError(.invalidArgument, "\(source): '\(key)' must be an object")
            }
            var out: [(name: String, value: String)] = []
            for (k, v) in entries {
                switch v {
                case .string(let s): out.append((k, s))
                case .int, .double, .bool: out.append((k, v.javaScriptString))
                default: throw MsgFloError(.invalidArgument, "\(source): \(key) '\(k)' must be a string")
                }
            }
            return out
        }
        self.init(namespace: namespace, repository: repository,
                  components: try table("components").map { (name: $0.name, template: $0.value) },
                  variables: try table("variables"),
                  handlers: Dictionary(try table("handlers").map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }))
    }

    /// Reads a library file. A missing or unreadable file is an error; callers that default to `package.json` may
    /// check for its existence first.
    package static func load(path: String) throws(MsgFloError) -> LibraryConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw MsgFloError(.notFound, "cannot read library \(path): \(LibraryFiles.reason(error))")
        }
        var config = try LibraryConfig(json: String(decoding: data, as: UTF8.self), source: path)
        config.path = path
        return config
    }

    /// `command` with its program resolved against the library file's folder when it is a relative path (has a
    /// `/`, does not start with `/`, `#`, `$`, `~` or a quote). Bare names are left for PATH, as msgflo does.
    package func resolvingProgram(_ command: String) -> String {
        guard let path else { return command }
        let trimmed = command.drop { $0 == " " || $0 == "\t" }
        let program = trimmed.prefix { $0 != " " && $0 != "\t" }
        guard program.contains("/"), let first = program.first, !"/#$~'\"\\".contains(first),
              !program.contains("'"), !program.contains("\"") else { return command }
        let folder = LibraryFiles.folder(of: path)
        let resolved = LibraryFiles.join(folder, String(program))
        let safe = resolved.allSatisfy { $0.isLetter || $0.isNumber || "/._-+,@%=:".contains($0) }
        return (safe ? resolved : "'" + resolved.replacingOccurrences(of: "'", with: "'\\''") + "'")
            + trimmed.dropFirst(program.count)
    }

    /// msgflo's `baseComponentCommand`: the variables, then `#FILENAME` (files only), `#COMPONENTNAME` (the part
    /// after the first `/`, or the whole name), `#COMPONENT`. A variable of one of those names keeps its place in
    /// the order and takes the new value, as a JavaScript object does.
    package func baseCommand(component: String, template: String, filename: String? = nil) -> String {
        var vars = variables
        func set(_ name: String, _ value: String) {
            if let i = vars.firstIndex(where: { $0.name == name }) { vars[i].value = value } else { vars.append((name, value)) }
        }
        let parts = component.split(separator: "/", omittingEmptySubsequences: false)
        let componentName = parts.count > 1 && !parts[1].isEmpty ? String(parts[1]) : component
        if let filename, !filename.isEmpty { set("FILENAME", filename) }
        set("COMPONENTNAME", componentName)
        set("COMPONENT", component)
        return Template.expand(template, vars)
    }
}

/// A component the library can start.
package struct LibraryComponent: Sendable, Hashable {
    package var name: String
    /// The command template with the library's variables, `#FILENAME`, `#COMPONENTNAME` and `#COMPONENT` expanded;
    /// `#ROLE` and `#IIPS` remain for ``ComponentLibrary/command(component:role:iips:)``.
    package var command: String
    /// From the file extension for components found in the component directory; nil for configured ones.
    package var language: String?
    /// The component file, for components found in the component directory.
    package var file: String?
}

/// msgflo's component library: the configured components and the files of the component directory, each with the
/// command that starts it. Used by the coordinator (`msgflo`), `msgflo-setup --participants` and `msgflo-procfile`.
package struct ComponentLibrary: Sendable {
    package let config: LibraryConfig
    package let componentDirectory: String?
    /// Component names in the order msgflo adds them: directory files (sorted), then configured components.
    package private(set) var names: [String] = []
    package private(set) var components: [String: LibraryComponent] = [:]

    /// Builds the library. Components found in `componentDirectory` come first; a configured component that
    /// msgflo's lookup already finds there (same name, same basename, or namespaced) is not added again, as in msgflo.
    package init(config: LibraryConfig, componentDirectory: String? = nil) throws(MsgFloError) {
        self.config = config
        self.componentDirectory = componentDirectory
        if let dir = componentDirectory {
            for c in try Self.scan(directory: dir, config: config) where component(named: c.name) == nil {
                add(c)
            }
        }
        for (name, template) in config.components where component(named: name) == nil {
            add(LibraryComponent(name: name,
                                 command: config.resolvingProgram(config.baseCommand(component: name, template: template))))
        }
    }

    /// Reads the library file at `path` and scans `componentDirectory`.
    package static func load(path: String, componentDirectory: String? = nil) throws(MsgFloError) -> ComponentLibrary {
        try ComponentLibrary(config: LibraryConfig.load(path: path), componentDirectory: componentDirectory)
    }

    private mutating func add(_ c: LibraryComponent) {
        if components[c.name] == nil { names.append(c.name) }
        components[c.name] = c
    }

    /// msgflo's `getComponent`: the exact name, then the name without its namespace (the part after the last `/`),
    /// then `<namespace>/<name>`.
    package func component(named name: String) -> LibraryComponent? {
        if let c = components[name] { return c }
        let base = name.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? name
        if let c = components[base] { return c }
        if let ns = config.namespace, let c = components[ns + "/" + name] { return c }
        return nil
    }

    /// The command that starts `component` as `role`: `#ROLE`, then `#IIPS` (`'<compact JSON object>'`).
    /// Throws msgflo's `No component <component> defined for role <role>`.
    package func command(component: String, role: String,
                        iips: [(port: String, data: JSONValue)] = []) throws(MsgFloError) -> String {
        guard let c = self.component(named: component), !c.command.isEmpty else {
            throw MsgFloError(.notFound, "No component \(component) defined for role \(role)")
        }
        return Template.expand(c.command, [("ROLE", role), ("IIPS", Self.iipsArgument(iips))])
    }

    /// `#IIPS` as msgflo writes it: `'` + `JSON.stringify({port: data, …})` + `'`, ports in the given order (a port
    /// given twice keeps its first place and its last value).
    package static func iipsArgument(_ iips: [(port: String, data: JSONValue)]) -> String {
        var o = JSONObject()
        for (port, data) in iips { o[port] = data }
        return "'" + JSONValue.object(o).serialized + "'"
    }

    /// The components of a directory: every file whose extension has a handler, named `[namespace/]<basename>`.
    /// A directory that does not exist gives none (as in msgflo).
    package static func scan(directory: String, config: LibraryConfig) throws(MsgFloError) -> [LibraryComponent] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else { return [] }
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: directory).sorted() } catch {
            throw MsgFloError(.notFound, "cannot read component directory \(directory): \(LibraryFiles.reason(error))")
        }
        var out: [LibraryComponent] = []
        for file in entries {
            let ext = LibraryFiles.extensionName(file)
            guard !ext.isEmpty, let handler = config.handlers[ext] else { continue }
            let base = String(file.dropLast(ext.count))
            var name = base
            if let ns = config.namespace, !ns.isEmpty { name = ns + "/" + base }
            let path = LibraryFiles.join(directory, file)
            // A library file (this one, or any with a `msgflo` or `components` key) is no component.
            if ext == ".json", LibraryFiles.isLibrary(path, config: config) { continue }
            out.append(LibraryComponent(name: name,
                                        command: config.baseCommand(component: base, template: handler, filename: path),
                                        language: LibraryConfig.languages[ext], file: path))
        }
        return out
    }
}

/// Node's `path` helpers as msgflo's library uses them.
enum LibraryFiles {
    /// `path.extname`: from the last `.` of the last component, unless that dot starts the name.
    static func extensionName(_ file: String) -> String {
        let name = file.split(separator: "/").last.map(String.init) ?? file
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[dot...])
    }

    /// The absolute folder of a file path.
    static func folder(of path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : join(FileManager.default.currentDirectoryPath, path)
        return join(absolute, "..")
    }

    /// Whether a `.json` file of a component directory is a library file rather than a component (a graph): the
    /// library in use, `package.json`, or a JSON object with a `msgflo` or `components` key.
    static func isLibrary(_ path: String, config: LibraryConfig) -> Bool {
        func absolute(_ p: String) -> String {
            URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path
        }
        if let library = config.path, absolute(library) == absolute(path) { return true }
        if path.hasSuffix("/package.json") || path == "package.json" { return true }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int, size <= 1 << 20,
              let data = FileManager.default.contents(atPath: path),
              let doc = try? JSONValue(parsing: data, maximumDepth: LibraryConfig.maximumDepth) else { return false }
        return doc["msgflo"] != nil || doc["components"] != nil
    }

    /// `path.join`: joined with `/` and normalized (`.` dropped, `..` applied).
    static func join(_ a: String, _ b: String) -> String {
        let absolute = a.hasPrefix("/")
        var parts: [Substring] = []
        for p in (a + "/" + b).split(separator: "/", omittingEmptySubsequences: true) {
            if p == "." { continue }
            if p == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
            if p == "..", absolute { continue }
            parts.append(p)
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? CocoaError, let u = e.userInfo[NSUnderlyingErrorKey] as? POSIXError {
            return String(cString: strerror(u.code.rawValue))
        }
        if let e = error as? CocoaError {
            switch e.code {
            case .fileReadNoSuchFile, .fileNoSuchFile: return "no such file"
            case .fileReadNoPermission: return "permission denied"
            default: break
            }
        }
        return "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "unreadable"
    }
}
