// MsgFloMQTT
