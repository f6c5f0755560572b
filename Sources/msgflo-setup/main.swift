import MsgFloTools
import MsgFloTransports

await ToolMain.run(SetupCommand.self, transports: { url, logger in Transports.make(url, logger: logger) })
