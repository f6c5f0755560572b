import Foundation
import Logging

/// The logger a test hands to the libraries (they take the caller's logger and make none of their own): at `level`
/// (default: warnings and worse), or at `debug` when `MSGFLO_TEST_LOG` is set.
public func testLogger(_ label: String = "test", level: Logger.Level = .warning) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["MSGFLO_TEST_LOG"] == nil ? level : .debug
    return logger
}
