import CMosquitto

/// MQTT topic filters: matching, and the smallest set of broker subscriptions that covers what the consumers,
/// taps and routes of one connection need.
enum TopicFilter {
    static func hasWildcard(_ filter: String) -> Bool {
        filter.utf8.contains(UInt8(ascii: "+")) || filter.utf8.contains(UInt8(ascii: "#"))
    }

    /// Whether `topic` (no wildcards) matches `filter`, by libmosquitto's rules (`#` matches the parent level,
    /// `$`-topics are not matched by a leading wildcard).
    static func matches(_ filter: String, _ topic: String) -> Bool {
        var result = false
        guard mosquitto_topic_matches_sub(filter, topic, &result) == MosquittoStatus.success else { return false }
        return result
    }

    /// Whether every topic that `narrow` matches is also matched by `wide`.
    static func covers(_ wide: String, _ narrow: String) -> Bool {
        if wide == narrow { return true }
        let w = wide.split(separator: "/", omittingEmptySubsequences: false)
        let n = narrow.split(separator: "/", omittingEmptySubsequences: false)
        // A leading wildcard never matches `$SYS`-like topics.
        if let first = n.first, first.hasPrefix("$"), let wf = w.first, wf == "+" || wf == "#" { return false }
        var i = 0
        while i < w.count {
            if w[i] == "#" { return true }
            guard i < n.count else { return false }
            if w[i] == "+" {
                if n[i] == "#" { return false }
            } else if w[i] != n[i] {
                return false
            }
            i += 1
        }
        if i == n.count { return true }
        // `a/#` also matches `a`; so `a` covers nothing longer, but `a/+` vs `a/#`: `#` matches more.
        return false
    }

    /// The filters to subscribe on the broker: `needed` without those another one covers, so that one message
    /// reaches this connection once even where the broker would send one copy per matching subscription
    /// (partial overlaps such as `a/+/c` and `a/b/+` cannot be merged and may still bring two copies).
    static func minimalCover(_ needed: Set<String>) -> Set<String> {
        let wild = needed.filter(hasWildcard)
        if wild.isEmpty { return needed }
        return needed.filter { f in
            !wild.contains { w in w != f && covers(w, f) && !(covers(f, w) && f < w) }
        }
    }
}
