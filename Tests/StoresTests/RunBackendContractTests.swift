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
        try await runs.arrive(record, durable: true)
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
        try await runs.arrive(record, durable: false)
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
        try await runs.arrive(first, durable: true)
        try await runs.arrive(second, durable: true)
        #expect(try await runs.waitForTurn(first, announce: true))
        let turn = Task { try await runs.waitForTurn(second, announce: true) }
        if backend == .postgres {
            // On a shared database the second waits for the first's end; in one process the
            // executor orders the story, and the backend has no one else to wait for.
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
        try await owner.arrive(record, durable: true)
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
        try await owner.arrive(record, durable: true)
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

    @Test func aRunTheProcessLeftUnfinishedIsFailedWhenTheDataDirectoryOpens() async throws {
        let fixture = try await StoreFixture.make(.jsonl)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        let record = Self.arrived("r1")
        try await runs.arrive(record, durable: true)
        try await runs.close()
        runs = try await fixture.openBackend()
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
}
