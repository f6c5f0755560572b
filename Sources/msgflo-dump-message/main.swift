import MsgFloTools
import MsgFloTransports

await ToolMain.run(DumpMessageCommand.self, transports: { url, logger in Transports.make(url, logger: logger) })
