import FlowdSync
import Foundation
import Synchronization
import Testing

/// `WaitList`, the signalled wait behind the drain (`HTTPServer.waitForInFlight`/`stop`,
/// `RunService.waitForRuns`): woken by the change, not by a poll, and never missing one.
@Suite("WaitList")
struct WaitListTests {
    @Test func aConditionThatHoldsReturnsAtOnce() async {
        let list = WaitList()
        #expect(await list.wait(until: { true }, timeout: .seconds(30)))
    }

    @Test func withoutTheConditionItTimesOutFalseAfterTheTimeout() async {
        let list = WaitList()
        let started = ContinuousClock.now
        #expect(await list.wait(until: { false }, timeout: .milliseconds(100)) == false)
        #expect(ContinuousClock.now - started >= .milliseconds(100))
    }

    @Test func aNotifiedChangeWakesTheWaiterLongBeforeItsTimeout() async {
        let list = WaitList()
        let count = Counter(1)
        let started = ContinuousClock.now
        let changer = Thread {
            usleep(50_000)
            if count.decrement() == 0 { list.notify() }
        }
        changer.start()
        #expect(await list.wait(until: { count.value == 0 }, timeout: .seconds(60)))
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func aCancelledWaiterReturnsFalsePromptly() async {
        let list = WaitList()
        let started = ContinuousClock.now
        let waiter = Task { await list.wait(until: { false }, timeout: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == false)
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// The change races the waiter's registration on another thread, 2,000 times: a lost
    /// wake-up would show as a wait running into its (long) timeout.
    @Test func noWakeUpIsLostWhenTheChangeRacesTheRegistration() async {
        let list = WaitList()
        for _ in 0..<2_000 {
            let count = Counter(1)
            let changer = Thread {
                if count.decrement() == 0 { list.notify() }
            }
            changer.start()
            let started = ContinuousClock.now
            let woken = await list.wait(until: { count.value == 0 }, timeout: .seconds(20))
            #expect(woken)
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }
}

/// An atomic count shared with a thread (an `Atomic` itself cannot be captured).
private final class Counter: Sendable {
    private let atomic: Atomic<Int>
    init(_ value: Int) { atomic = Atomic(value) }
    var value: Int { atomic.load(ordering: .sequentiallyConsistent) }
    func decrement() -> Int { atomic.subtract(1, ordering: .sequentiallyConsistent).newValue }
}
