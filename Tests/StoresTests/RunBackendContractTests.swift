import FlowdSync
import Foundation
import Testing

@testable import Stores

/// `RunBackend`'s promises, checked against both backends as `flowd serve` opens them: a run's
/// arrival, turn, commit or finish, reading it back, and cancels from another process.
@Suite("run backend contract")
struct RunBackendContractTests {
    private static let t0 = Date(timeIntervalSince1970: 1_795_000_000.123)

    private static func arrived(_ id: String, story: String = "s1") -> RunRecord {
        RunRecord(runID: id, flow: "default", storyID: story, status: .queued, createdAt: t0)
    }

    private static func progress(_ id: String) -> [RunEvent] {
        [RunEvent(id: 1, name: RunEventName.progress, data: ["run_id": .string(id), "agent": "analyst", "status": "started"])]
    }

    private static func success(_ record: RunRecord, _ result: String = "done") -> RunFinish {
        var r = record
        r.status = .succeeded
        r.result = result
        r.finishedAt = t0.addingTimeInterval(1.5)
        let done = RunEvent(id: 2, name: RunEventName.done, data: ["result": .string(result), "pending_docs": nil, "run_id": .string(r.runID)])
        return RunFinish(record: r, events: progress(r.runID) + [done])
    }

    private static func failure(_ record: RunRecord, status: RunStatus = .failed) -> RunFinish {
        var r = record
        r.status = status
        r.error = status == .cancelled ? "Run cancelled" : "Flow execution failed: boom"
        r.finishedAt = t0.addingTimeInterval(2)
        let terminal = status == .cancelled
            ? RunEvent(id: 2, name: RunEventName.cancelled, data: ["run_id": .string(r.runID)])
            : RunEvent.failure(id: 2, runID: r.runID, code: 500, detail: r.error!)
        return RunFinish(record: r, events: progress(r.runID) + [terminal])
    }

    private static func memory(_ story: String, _ output: String) -> MemoryTransaction {
        var tx = MemoryTransaction()
        tx.set(.isolated, "analyst:\(story)", ["status": "completed", "last_output": .string(output)])
        return tx
    }

    @Test(arguments: Backend.available)
    func aCommittedSuccessIsReadWholeAndSurvivesReopening(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        let record = Self.arrived("r1")
        #expect(try await runs.arrive(record, durable: true) == .arrived)
        #expect(try await runs.record("r1")?.status == .queued)
        #expect(try await runs.waitForTurn(record, announce: true))
        let finish = Self.success(record, "line1\n\"quoted\" é")
        try await runs.commit(Self.memory("s1", "out 1"), finish: finish)
        for reopened in [false, true] {
            if reopened {
                try await runs.close()
                runs = try await fixture.openBackend()
            }
            #expect(try await runs.record("r1") == finish.record)
            #expect(try await runs.storedEvents("r1", after: 0) == .finished(finish.events))
            #expect(try await runs.storedEvents("r1", after: 1) == .finished(Array(finish.events[1...])))
            #expect(try await runs.storedEvents("r1", after: 2) == .finished([]))
            #expect(try await runs.memory.get(.isolated, "analyst:s1")?["last_output"] == "out 1")
        }
        #expect(try await runs.record("nope") == nil)
        #expect(try await runs.storedEvents("nope", after: 0) == nil)
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func aRunThatDidNotSucceedIsFinishedWithItsEventsAndWritesNoMemory(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let runs = try await fixture.openBackend()
        // Not durable at arrival: a `/run` whose id nobody has yet. Its end stores it whole.
        let record = Self.arrived("r1")
        #expect(try await runs.arrive(record, durable: false) == .arrived)
        #expect(try await runs.waitForTurn(record, announce: false))
        let finish = Self.failure(record)
        try await runs.finish(finish)
        #expect(try await runs.record("r1") == finish.record)
        #expect(try await runs.storedEvents("r1", after: 0) == .finished(finish.events))
        #expect(try await runs.memory.get(.isolated, "analyst:s1") == nil)
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func aStoryRunsInArrivalOrderAcrossProcesses(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let runs = try await fixture.openBackend()
        let first = Self.arrived("r1")
        let second = Self.arrived("r2")
        #expect(try await runs.arrive(first, durable: true) == .arrived)
        #expect(try await runs.arrive(second, durable: true) == .arrived)
        #expect(try await runs.waitForTurn(first, announce: true))
        let turn = Task { try await runs.waitForTurn(second, announce: true) }
        if backend == .postgres {
            // On a shared database the second waits for the first's end; in one process the
            // executor orders the story, and the backend has no one else to wait for. (A wait
            // in which the second must not start: the behaviour under test.)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await runs.record("r2")?.status == .queued)
        }
        try await runs.commit(Self.memory("s1", "first"), finish: Self.success(first))
        #expect(try await turn.value)
        #expect(try await runs.record("r2")?.status == (backend == .postgres ? .running : .queued))
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func aCancelFromAnotherProcessStopsTheCommitAndAnyEndButCancelled(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let owner = try await fixture.openBackend(replica: "owner")
        let record = Self.arrived("r1")
        #expect(try await owner.arrive(record, durable: true) == .arrived)
        #expect(try await owner.waitForTurn(record, announce: true))
        guard backend == .postgres else {
            // One process (the data directory is locked to it): nobody else holds the run.
            #expect(try await owner.requestCancel("r1") == nil)
            try await owner.close()
            return
        }
        let other = try await fixture.openBackend(replica: "other")
        #expect(try await other.requestCancel("r1")?.status == .running)
        await #expect(throws: StoreError.self) { try await owner.commit(Self.memory("s1", "late"), finish: Self.success(record)) }
        #expect(try await owner.memory.get(.isolated, "analyst:s1") == nil)
        do {
            try await owner.finish(Self.failure(record))
            Issue.record("a failure overwrote a requested cancel")
        } catch {
            #expect(error.kind == .cancelled)
        }
        let cancelled = Self.failure(record, status: .cancelled)
        try await owner.finish(cancelled)
        #expect(try await other.record("r1") == cancelled.record)
        #expect(try await other.storedEvents("r1", after: 0) == .finished(cancelled.events))
        #expect(try await other.requestCancel("r1") == nil)  // finished: nothing to cancel
        try await other.close()
        try await owner.close()
    }

    @Test(arguments: Backend.available)
    func aRunOfAnotherProcessIsFollowedUntilItsEnd(_ backend: Backend) async throws {
        guard backend == .postgres else { return }  // one process: every unfinished run is live in it
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let owner = try await fixture.openBackend(replica: "owner")
        let other = try await fixture.openBackend(replica: "other")
        let ownerWork = Task { await owner.run(cancel: { _ in }, resume: { _ in }) }
        let otherWork = Task { await other.run(cancel: { _ in }, resume: { _ in }) }
        let record = Self.arrived("r1")
        #expect(try await owner.arrive(record, durable: true) == .arrived)
        #expect(try await owner.waitForTurn(record, announce: true))
        let finish = Self.success(record)
        owner.publish("r1", finish.events[0])
        #expect(try await other.storedEvents("r1", after: 0) == .running)
        let received = Locked<[RunEvent]>([])
        let following = Task { await other.follow("r1", after: 0, send: { event in received.withLock { $0.append(event) } }, isClosed: { false }) }
        try await owner.commit(Self.memory("s1", "out"), finish: finish)
        await following.value
        #expect(received.withLock { $0 } == finish.events)
        ownerWork.cancel()
        otherWork.cancel()
        await ownerWork.value
        await otherWork.value
        try await other.close()
        try await owner.close()
    }

    private static func keyed(_ id: String, key: String, story: String = "s1") -> RunRecord {
        RunRecord(runID: id, flow: "default", storyID: story, status: .queued, createdAt: t0, input: "the input",
                  idempotency: IdempotencyKey(key: key, route: "runs"))
    }

    private static func step(_ n: Int) -> RunStep {
        RunStep(agent: "agent\(n)", prompt: "prompt \(n)\n\"q\"", output: "output \(n) é", action: n == 2 ? "next" : nil)
    }

    @Test(arguments: Backend.available)
    func anIdempotencyKeyStartsOneRunAndIsKeptWithItsRecord(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        let first = Self.keyed("r1", key: "key-1")
        #expect(try await runs.arrive(first, durable: true) == .arrived)
        // The same key again (another request's run id): nothing is stored, the first run answers.
        #expect(try await runs.arrive(Self.keyed("r2", key: "key-1", story: "s2"), durable: true) == .duplicate(runID: "r1"))
        #expect(try await runs.record("r2") == nil)
        #expect(try await runs.arrive(Self.keyed("r3", key: "key-2"), durable: true) == .arrived)
        #expect(try await runs.arrive(Self.arrived("r4"), durable: true) == .arrived)  // no key: never a duplicate
        #expect(try await runs.steps(of: "r3") == [])
        for reopened in [false, true] {
            if reopened {
                try await runs.close()
                runs = try await fixture.openBackend()
            }
            #expect(try await runs.runID(forKey: "key-1") == "r1")
            #expect(try await runs.runID(forKey: "key-2") == "r3")
            #expect(try await runs.runID(forKey: "key-3") == nil)
            let stored = try await runs.record("r1")
            #expect(stored?.idempotency == IdempotencyKey(key: "key-1", route: "runs"))
            #expect(stored?.input == "the input")
        }
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func aJournalIsReadBackInStepOrderAndKeptWithTheFinishedRun(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        let record = Self.keyed("r1", key: "key-1")
        // Not durable at arrival (a `/run`): its first journal write stores it.
        #expect(try await runs.arrive(record, durable: false) == .arrived)
        #expect(try await runs.waitForTurn(record, announce: false))
        var running = record
        running.status = .running
        let finish = Self.success(running)
        try await runs.journal(running, steps: [Self.step(1), Self.step(2)], first: 1, events: [finish.events[0]])
        #expect(try await runs.steps(of: "r1") == [Self.step(1), Self.step(2)])
        try await runs.journal(running, steps: [Self.step(3)], first: 3, events: [])
        #expect(try await runs.steps(of: "r1") == [Self.step(1), Self.step(2), Self.step(3)])
        #expect(try await runs.steps(of: "nope") == nil)
        let all = [Self.step(1), Self.step(2), Self.step(3)]
        try await runs.commit(Self.memory("s1", "done"), finish: RunFinish(record: finish.record, events: finish.events, steps: all))
        for reopened in [false, true] {
            if reopened {
                try await runs.close()
                runs = try await fixture.openBackend()
            }
            // A success needs no journal (it cannot be retried): the embedded store drops it.
            #expect(try await runs.record("r1") == finish.record)
            #expect(try await runs.storedEvents("r1", after: 0) == .finished(finish.events))
        }
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func aRunThatFailedOrWasCancelledKeepsItsJournalForARetry(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        // r1 journaled one step, then failed with two; r2 journaled nothing and was cancelled with one.
        let failed = Self.arrived("r1")
        #expect(try await runs.arrive(failed, durable: true) == .arrived)
        #expect(try await runs.waitForTurn(failed, announce: true))
        var running = failed
        running.status = .running
        try await runs.journal(running, steps: [Self.step(1)], first: 1, events: [])
        let failure = Self.failure(failed)
        try await runs.finish(RunFinish(record: failure.record, events: failure.events, steps: [Self.step(1), Self.step(2)]))
        let cancelled = Self.arrived("r2", story: "s2")
        #expect(try await runs.arrive(cancelled, durable: true) == .arrived)
        let cancel = Self.failure(cancelled, status: .cancelled)
        try await runs.finish(RunFinish(record: cancel.record, events: cancel.events, steps: [Self.step(1)]))
        for reopened in [false, true] {
            if reopened {
                try await runs.close()
                runs = try await fixture.openBackend()
            }
            #expect(try await runs.record("r1") == failure.record)
            #expect(try await runs.steps(of: "r1") == [Self.step(1), Self.step(2)])
            #expect(try await runs.record("r2") == cancel.record)
            #expect(try await runs.steps(of: "r2") == [Self.step(1)])
        }
        try await runs.close()
    }

    @Test func aRunTheProcessLeftUnfinishedIsFailedWhenTheDataDirectoryOpensWithOnRestartFail() async throws {
        let fixture = try await StoreFixture.make(.jsonl)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        let record = Self.arrived("r1")
        #expect(try await runs.arrive(record, durable: true) == .arrived)
        try await runs.close()
        runs = try await fixture.openBackend(onRestart: .fail)
        let failed = try #require(try await runs.record("r1"))
        #expect(failed.status == .failed)
        #expect(failed.error == "flowd stopped while the run was queued")
        guard case .finished(let events)? = try await runs.storedEvents("r1", after: 0) else {
            Issue.record("no events")
            return
        }
        #expect(events.map(\.name) == [RunEventName.error])
        #expect(events.first?.data["status"] == 500)
        try await runs.close()
    }

    @Test func runsTheProcessLeftUnfinishedAreHandedOverOnceWithTheirJournalsInArrivalOrder() async throws {
        let fixture = try await StoreFixture.make(.jsonl)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        var first = Self.arrived("r1")
        first.input = "the input"
        try await runs.arrive(first, durable: true)
        let plain = Self.arrived("r2")  // a /run: nothing written until its journal
        try await runs.arrive(plain, durable: false)
        first.status = .running
        try await runs.journal(first, steps: [Self.step(1)], first: 1, events: Self.progress("r1"))
        try await runs.journal(plain, steps: [Self.step(1), Self.step(2)], first: 1, events: [])
        try await runs.close()

        for time in 1...2 {
            runs = try await fixture.openBackend()
            let taken = try await runs.takeOverInterrupted()
            #expect(taken.map(\.record.runID) == ["r1", "r2"])
            #expect(taken.map(\.record.resumed) == [time, time], "each take-over is counted, durably")
            #expect(taken.first?.record.input == "the input")
            #expect(taken.first?.steps == [Self.step(1)])
            #expect(taken.first?.events == Self.progress("r1"))
            #expect(taken.last?.steps == [Self.step(1), Self.step(2)])
            #expect(try await runs.takeOverInterrupted().isEmpty, "handed over once")
            #expect(try await runs.record("r1")?.resumed == time)
            try await runs.close()
        }
    }

    /// One key arriving with four runs at once, durably or not, is taken by exactly one of
    /// them; the others get its id. 200 rounds on each backend.
    @Test(arguments: Backend.available)
    func oneKeyArrivingFourTimesAtOnceIsTakenByOneRun(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let runs = try await fixture.openBackend()
        for round in 0..<200 {
            let arrivals = try await withThrowingTaskGroup(of: (String, Arrival).self) { group in
                for k in 0..<4 {
                    group.addTask {
                        let id = "r\(round)-\(k)"
                        return (id, try await runs.arrive(Self.keyed(id, key: "key-\(round)", story: "s\(round)"), durable: k % 2 == 0))
                    }
                }
                return try await group.reduce(into: [(String, Arrival)]()) { $0.append($1) }
            }
            let winners = arrivals.filter { $0.1 == .arrived }.map(\.0)
            #expect(winners.count == 1, "round \(round): \(arrivals)")
            guard let winner = winners.first else { continue }
            #expect(arrivals.allSatisfy { $0.1 == .arrived || $0.1 == .duplicate(runID: winner) }, "round \(round): \(arrivals)")
            #expect(try await runs.runID(forKey: "key-\(round)") == winner)
        }
        try await runs.close()
    }
}
