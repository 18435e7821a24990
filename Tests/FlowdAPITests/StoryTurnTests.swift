import FlowdAPI
import FlowdSync
import Foundation
import Testing

/// The executor's per-story queue: turns reserved ahead (resumed runs) keep their order
/// against runs that arrive later, and a turn given up or cancelled never blocks its story.
@Suite("story turns")
struct StoryTurnTests {
    /// Appends to a shared list, for checking the order bodies ran in.
    private final class Order: Sendable {
        private let names = Locked<[String]>([])
        func append(_ name: String) { names.withLock { $0.append(name) } }
        var all: [String] { names.withLock { $0 } }
    }

    @Test func reservedTurnsRunInReservationOrderAheadOfLaterRuns() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let executor = flowd.app.executor
            for round in 0..<50 {
                let story = "s\(round)"
                let order = Order()
                let turns = [await executor.reserveTurn(of: story), await executor.reserveTurn(of: story),
                             await executor.reserveTurn(of: story)]
                // Their tasks start in reverse, and a new run arrives meanwhile: the order holds.
                var tasks: [Task<Void, Never>] = []
                for (k, turn) in turns.enumerated().reversed() {
                    tasks.append(Task { _ = await executor.inTurn(turn) { order.append("resumed\(k)") } })
                }
                tasks.append(Task { _ = await executor.inTurn(of: story) { order.append("new") } })
                for task in tasks { await task.value }
                #expect(order.all == ["resumed0", "resumed1", "resumed2", "new"], "round \(round)")
            }
        }
    }

    @Test func aTurnGivenUpOrCancelledWhileWaitingNeverBlocksItsStory() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let executor = flowd.app.executor
            for round in 0..<200 {
                let story = "c\(round)"
                let order = Order()
                let held = await executor.reserveTurn(of: story)
                let abandoned = await executor.reserveTurn(of: story)
                let cancelled = Task { await executor.inTurn(of: story) { order.append("cancelled") } }
                let later = Task { _ = await executor.inTurn(of: story) { order.append("later") } }
                await executor.abandon(abandoned)
                cancelled.cancel()
                // The holder gives its turn up without running (a resumed run refused at its turn).
                if round.isMultiple(of: 2) {
                    await executor.abandon(held)
                } else {
                    _ = await executor.inTurn(held) { order.append("held") }
                }
                await later.value
                let ranCancelled = await cancelled.value != nil
                var expected = round.isMultiple(of: 2) ? [] : ["held"]
                if ranCancelled { expected.append("cancelled") }  // its cancel may land after its turn came
                expected.append("later")
                #expect(order.all.sorted() == expected.sorted(), "round \(round)")
            }
        }
    }
}
