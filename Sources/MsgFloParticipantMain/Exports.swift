// `import MsgFloParticipantMain` is the one import a participant executable needs: the SDK (MsgFloParticipant, which
// brings MsgFlo, Logging and ServiceLifecycle) and the transports (`Transports.make`), besides ParticipantMain.
@_exported import MsgFloParticipant
@_exported import MsgFloTransports
