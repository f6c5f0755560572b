extension Coordinator {
    /// The pid of the child the daemon runs for `role` (nil: it runs none), for the live view's node panel.
    public func childPID(_ role: String) -> Int32? { supervisor?.pid(role) }
}
