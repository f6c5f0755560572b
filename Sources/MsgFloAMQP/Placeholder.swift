// MsgFloAMQP
