import MsgFloTools
import MsgFloTransports

await ToolMain.run(RegisterCommand.self, transports: { url, logger, timeouts in
    try Transports.make(url, logger: logger, timeouts: timeouts)
})
