// What a participant's code names comes with this one import: messages, JSON and errors (MsgFlo), the logger
// (`ctx.participant.logger` is a swift-log Logger), Mutex for a handler's state (Synchronization), and
// ServiceLifecycle for running participants in a ServiceGroup.
@_exported import Logging
@_exported import MsgFlo
@_exported import ServiceLifecycle
@_exported import Synchronization
