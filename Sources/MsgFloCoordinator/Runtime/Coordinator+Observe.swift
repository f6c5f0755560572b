import MsgFlo

extension Coordinator {
    /// The pid of the child the daemon runs for `role` (nil: it runs none), for the live view's node panel.
    package func childPID(_ role: String) -> Int32? { supervisor?.pid(role) }
}

extension Coordinator {
    /// The broker connection as the live view and `/readyz` show it.
    package struct BrokerView: Sendable {
        package var connected: Bool
        package var broker: String
        /// What the transport can do (the live view samples queue depths where it has ``TransportCapabilities/queueDepth``).
        package var capabilities: TransportCapabilities
    }

    package var brokerView: BrokerView {
        BrokerView(connected: transport.state == .connected, broker: transport.broker.description,
                   capabilities: transport.capabilities)
    }
}
