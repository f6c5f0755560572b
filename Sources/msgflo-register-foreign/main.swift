import MsgFloTools
import MsgFloTransports

// msgflo's older, single-role name for msgflo-register (deprecated there too).
await ToolMain.run(RegisterForeignCommand.self, transports: { url, logger, timeouts in
    try Transports.make(url, logger: logger, timeouts: timeouts)
})
