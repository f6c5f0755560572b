import MsgFloTools
import MsgFloTransports

await ToolMain.run(QueuesCommand.self, transports: { url, logger, timeouts in
    try Transports.make(url, logger: logger, timeouts: timeouts)
})
