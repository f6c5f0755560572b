// MsgFloCoordinator
