import MsgFloTools
import MsgFloTransports

await ToolMain.run(SendMessageCommand.self, transports: { url, logger in Transports.make(url, logger: logger) })
