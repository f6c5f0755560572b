// MsgFloParticipant
