import Foundation

/// An executable product built beside the tests (`swift build` puts executables and the test bundle side by side),
/// else in `.build/debug`.
public func builtExecutable(_ name: String) -> URL {
    let candidates = [
        Bundle.main.executableURL?.deletingLastPathComponent(),
        Bundle.main.bundleURL.deletingLastPathComponent(),
        TestBrokers.packageRoot.appendingPathComponent(".build/debug"),
    ].compactMap { $0 }.map { $0.appendingPathComponent(name) }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
}

/// participants/library.json written to `file` with its commands pointed at the msgflo-participant built beside the
/// tests (the file names `../.build/release/msgflo-participant`); `extra` is put first among its components.
public func writeParticipantsLibrary(to file: URL, extra: String = "") throws {
    var text = try String(contentsOf: TestBrokers.packageRoot.appendingPathComponent("participants/library.json"), encoding: .utf8)
    if !extra.isEmpty { text = text.replacingOccurrences(of: "\"components\": {", with: "\"components\": {\n" + extra + ",") }
    try text.replacingOccurrences(of: "../.build/release/msgflo-participant", with: builtExecutable("msgflo-participant").path)
        .write(to: file, atomically: true, encoding: .utf8)
}
