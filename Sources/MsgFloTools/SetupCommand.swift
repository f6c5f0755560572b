import ArgumentParser

public struct SetupCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "msgflo-setup", abstract: "Not built yet.")
    public init() {}
    public func run() async throws { throw ToolFailure("not implemented yet") }
}

public struct ProcfileCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "msgflo-procfile", abstract: "Not built yet.")
    public init() {}
    public func run() async throws { throw ToolFailure("not implemented yet") }
}
