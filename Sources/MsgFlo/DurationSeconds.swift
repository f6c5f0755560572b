extension Duration {
    /// The duration in seconds, as a Double (rates, log lines, decays).
    package var inSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
