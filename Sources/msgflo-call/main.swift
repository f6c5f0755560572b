import MsgFloTools
import MsgFloTransports

await ToolMain.run(CallCommand.self, transports: { url, logger, timeouts in
    try Transports.make(url, logger: logger, timeouts: timeouts)
})
