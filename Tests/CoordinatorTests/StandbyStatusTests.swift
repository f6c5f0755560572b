import Foundation
import MsgFlo
import MsgFloCoordinator
import Testing

/// `msgflo status` with standby coordinators: the active instance is named (issue 15); a lone daemon's answer is
/// as before.
@Suite struct StandbyStatusTests {
    @Test func activeInstanceRoundTripsAndHeadsTheTable() throws {
        var s = NetworkStatus(source: "daemon", rows: [])
        #expect(s.json["active"] == nil)
        #expect(!s.table().contains("active coordinator"))
        s.active = "host-a:4242"
        let back = try NetworkStatus(json: s.json)
        #expect(back.active == "host-a:4242")
        #expect(back.table().hasPrefix("active coordinator: host-a:4242"))
    }

    @Test func hostileActiveNameIsEscapedInTheTable() {
        var s = NetworkStatus(source: "daemon", rows: [])
        s.active = "evil\u{1b}[2J\nname"
        let t = s.table()
        #expect(!t.contains("\u{1b}"))
        #expect(t.split(separator: "\n").count == 2)
    }

    @Test func instanceNameIsHostAndPid() {
        #expect(CoordinatorElection.instanceName.hasSuffix(":\(ProcessInfo.processInfo.processIdentifier)"))
    }
}
