// MsgFloTransports
