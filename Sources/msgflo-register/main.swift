import MsgFloTools
import MsgFloTransports

await ToolMain.run(RegisterCommand.self, transports: { url, logger in Transports.make(url, logger: logger) })
