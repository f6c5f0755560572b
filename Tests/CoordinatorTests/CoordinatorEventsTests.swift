import Foundation
import Synchronization
import Testing
@testable import MsgFloCoordinator

@Suite struct CoordinatorEventsTests {
    /// The release daemon died of a stack overflow after ~100,000 tapped messages: each emit wrapped the stored
    /// observer in two more reabstraction thunks, so the stack under the observer grew by two frames per event.
    @Test("the observer is called through a stack as deep after 5,000 events as after the first")
    func observerStackStaysFlat() {
        let events = CoordinatorEvents()
        let measure = Mutex(false)
        let depths = Mutex<[Int]>([])
        events.observe { _ in
            guard measure.withLock({ $0 }) else { return }
            depths.withLock { $0.append(Thread.callStackSymbols.count) }
        }
        measure.withLock { $0 = true }
        events.emit(.graphChanged)
        measure.withLock { $0 = false }
        for _ in 0..<5_000 { events.emit(.graphChanged) }
        measure.withLock { $0 = true }
        events.emit(.graphChanged)
        let d = depths.withLock { $0 }
        #expect(d.count == 2)
        #expect(d.count == 2 && d[1] <= d[0] + 2, "stack depth under the observer: \(d[0]) at first, \(d.last ?? 0) after 5,000 events")
    }
}
