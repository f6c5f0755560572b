import MsgFloTools
import MsgFloTransports

await ToolMain.run(ProcfileCommand.self, transports: { url, logger in Transports.make(url, logger: logger) })
