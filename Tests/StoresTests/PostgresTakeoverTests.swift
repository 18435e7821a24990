import FlowdSync
import FlowdTesting
import Foundation
import Logging
import PostgresStores
import Testing

@testable import Stores

/// PostgreSQL only: the runs of a replica whose lease expired are taken over by exactly one
/// live replica (`RestartPolicy.resume`) or failed (`.fail`); the journal's own guarantees
/// (a lost arrival stored with it, nothing written to a run that is not this replica's).
@Suite("postgres takeover", .serialized, .enabled(if: PostgresServer.unavailableReason == nil, "PostgreSQL is not installed"))
struct PostgresTakeoverTests {
    private static let t0 = Date(timeIntervalSince1970: 1_795_000_000.123)

    private static func record(_ id: String, story: String = "s1") -> RunRecord {
        RunRecord(runID: id, flow: "default", storyID: story, status: .queued, createdAt: t0, input: "input of \(id)",
                  idempotency: IdempotencyKey(key: "key-\(id)", route: "runs"))
    }

    private static func step(_ n: Int) -> RunStep {
        RunStep(agent: "agent\(n)", prompt: "prompt \(n)", output: "output \(n)", action: nil)
    }

    private static func events(_ id: String, agent: String = "agent1") -> [RunEvent] {
        [.progress(id: 1, runID: id, agent: agent, status: "started", at: t0),
         .progress(id: 2, runID: id, agent: agent, status: "completed", at: t0, duration: 0.5),
         .result(id: 3, runID: id, agent: agent, output: "output 1")]
    }

    /// A replica of `url`; `lease` short for the one that is to die.
    private static func replica(_ url: String, _ id: String, lease: Duration = .seconds(5),
                                onRestart: RestartPolicy = .resume) async throws -> PostgresRunBackend {
        try await PostgresRunBackend.open(url: url, poolSize: 4, leaseTTL: lease, replicaID: id, onRestart: onRestart,
                                          logger: Logger(label: "test"))
    }

    /// A replica's background work, keeping what its `resume` was handed.
    private final class Running: Sendable {
        let resumed = Locked<[[InterruptedRun]]>([])
        let task: Task<Void, Never>

        init(_ backend: PostgresRunBackend) {
            let resumed = self.resumed
            task = Task { await backend.run(cancel: { _ in }, resume: { runs in resumed.withLock { $0.append(runs) } }) }
        }

        var runs: [InterruptedRun] { resumed.withLock { $0.flatMap { $0 } } }

        func stop() async {
            task.cancel()
            await task.value
        }
    }

    private static func waitUntil(_ what: String, timeout: Duration = .seconds(20),
                                  _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(try await condition()) {
            guard ContinuousClock.now < deadline else { throw TestClientError("still not: \(what)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Replica A (1 s lease) holds r1 running, with a journaled step and its events, and r2
    /// queued behind it; then it stops without renewing its lease (as if killed).
    private static func abandonedRuns(_ url: String) async throws {
        let a = try await replica(url, "a", lease: .seconds(1))
        let r1 = record("r1")
        let r2 = record("r2")
        #expect(try await a.arrive(r1, durable: true) == .arrived)
        #expect(try await a.arrive(r2, durable: false) == .arrived)
        var running = r1
        running.status = .running
        #expect(try await a.waitForTurn(running, announce: true))
        try await a.journal(running, steps: [step(1)], first: 1, events: events("r1"))
        try await a.close()
    }

    @Test func aLiveReplicaResumesTheRunsOfOneWhoseLeaseExpiredAndNoOtherDoes() async throws {
        let url = try await PostgresServer.shared().makeDatabase()
        try await Self.abandonedRuns(url)
        let b = try await Self.replica(url, "b")
        let bWork = Running(b)
        try await Self.waitUntil("b resumed both runs") { bWork.runs.count >= 2 }
        let taken = bWork.runs
        #expect(taken.map(\.record.runID) == ["r1", "r2"])  // arrival order
        #expect(taken.map(\.record.resumed) == [1, 1])
        #expect(taken.map(\.record.status) == [.running, .queued])
        #expect(taken[0].record.input == "input of r1" && taken[0].record.idempotency?.key == "key-r1")
        #expect(taken[0].steps == [Self.step(1)])
        #expect(taken[0].events == Self.events("r1"))
        #expect(taken[1].steps.isEmpty && taken[1].events.isEmpty)
        #expect(try await b.record("r1")?.resumed == 1)
        #expect(try await b.record("r1")?.status == .running)

        // A third replica looks for expired leases for a while: none of these runs is its.
        let c = try await Self.replica(url, "c")
        let cWork = Running(c)
        try await Task.sleep(for: .seconds(3))  // a wait in which nothing must happen: the behaviour under test
        #expect(cWork.runs.isEmpty)
        #expect(bWork.runs.count == 2)

        // The replica that took r1 over goes on with it: its turn, its journal, its success.
        var running = taken[0].record
        #expect(try await b.waitForTurn(running, announce: true))
        try await b.journal(running, steps: [Self.step(2)], first: 2, events: [])
        #expect(try await b.steps(of: "r1") == [Self.step(1), Self.step(2)])
        running.status = .succeeded
        running.result = "done"
        running.finishedAt = Self.t0.addingTimeInterval(3)
        let done = RunEvent(id: 4, name: RunEventName.done, data: ["result": "done", "pending_docs": nil, "run_id": "r1"])
        try await b.commit(MemoryTransaction(), finish: RunFinish(record: running, events: Self.events("r1") + [done]))
        #expect(try await c.record("r1") == running)
        #expect(try await c.storedEvents("r1", after: 0) == .finished(Self.events("r1") + [done]))

        await cWork.stop()
        await bWork.stop()
        try await c.close()
        try await b.close()
    }

    @Test func replicasLookingAtOnceTakeEachRunOnce() async throws {
        let url = try await PostgresServer.shared().makeDatabase()
        let a = try await Self.replica(url, "a", lease: .seconds(1))
        let ids = (1...12).map { "r\($0)" }
        for (k, id) in ids.enumerated() {
            #expect(try await a.arrive(Self.record(id, story: "s\(k % 3)"), durable: true) == .arrived)
        }
        try await a.close()
        let replicas = try await [Self.replica(url, "b"), Self.replica(url, "c"), Self.replica(url, "d")]
        let work = replicas.map(Running.init)
        try await Self.waitUntil("all runs taken over") { work.reduce(0) { $0 + $1.runs.count } >= ids.count }
        try await Task.sleep(for: .seconds(2))  // and no second take (nothing must happen: the behaviour under test)
        let all = work.flatMap(\.runs)
        #expect(all.map(\.record.runID).sorted() == ids.sorted())
        #expect(all.allSatisfy { $0.record.resumed == 1 })
        for handOver in work.flatMap({ $0.resumed.withLock { $0 } }) {
            let numbers = handOver.map { Int($0.record.runID.dropFirst())! }
            #expect(numbers == numbers.sorted())  // in arrival order
        }
        for w in work { await w.stop() }
        for r in replicas { try await r.close() }
    }

    @Test func aReplicaWhoseLeaseExpiredWritesNothingMoreToARunTakenOver() async throws {
        let url = try await PostgresServer.shared().makeDatabase()
        try await Self.abandonedRuns(url)
        let b = try await Self.replica(url, "b")
        let bWork = Running(b)
        try await Self.waitUntil("b resumed r1") { bWork.runs.count >= 2 }
        // A comes back (same replica id, a new lease) and goes on as if nothing happened.
        let a = try await Self.replica(url, "a")
        var running = Self.record("r1")
        running.status = .running
        await #expect(throws: StoreError.self) { try await a.journal(running, steps: [Self.step(2)], first: 2, events: []) }
        await #expect(throws: StoreError.self) { _ = try await a.waitForTurn(running, announce: true) }
        var late = running
        late.status = .succeeded
        late.finishedAt = Self.t0.addingTimeInterval(9)
        do {
            try await a.commit(MemoryTransaction(), finish: RunFinish(record: late, events: []))
            Issue.record("a stale replica committed a run another one took over")
        } catch {
            #expect(error.kind == .failed)
        }
        late.status = .failed
        late.error = "late"
        try await a.finish(RunFinish(record: late, events: []))  // stands back: not its run
        let now = try #require(try await b.record("r1"))
        #expect(now.status == .running && now.resumed == 1)
        #expect(try await b.steps(of: "r1") == [Self.step(1)])
        await bWork.stop()
        try await a.close()
        try await b.close()
    }

    @Test func withFailTheRunsOfAnExpiredLeaseEndFailed() async throws {
        let url = try await PostgresServer.shared().makeDatabase()
        try await Self.abandonedRuns(url)
        let b = try await Self.replica(url, "b", onRestart: .fail)
        let bWork = Running(b)
        try await Self.waitUntil("r1 and r2 failed") {
            let first = try await b.record("r1")?.status
            let second = try await b.record("r2")?.status
            return first == .failed && second == .failed
        }
        let failed = try #require(try await b.record("r1"))
        #expect(failed.error == "flowd stopped while the run was running (replica a lost its lease)")
        #expect(failed.resumed == 0)
        guard case .finished(let events)? = try await b.storedEvents("r1", after: 0) else {
            Issue.record("r1 has not finished")
            return
        }
        #expect(events.dropLast() == Self.events("r1")[...])
        #expect(events.last?.name == RunEventName.error && events.last?.id == 4)
        #expect(try await b.steps(of: "r1") == [Self.step(1)])  // kept for a retry
        #expect(try await b.record("r2")?.error == "flowd stopped while the run was queued (replica a lost its lease)")
        #expect(bWork.runs.isEmpty)
        await bWork.stop()
        try await b.close()
    }

    @Test func aJournalStoresARunWhoseArrivalWasLostAndNothingOnAFinishedRun() async throws {
        let url = try await PostgresServer.shared().makeDatabase()
        let a = try await Self.replica(url, "a")
        // No arrival stored (as after a database crash that lost an asynchronous commit).
        var running = Self.record("r1")
        running.status = .running
        try await a.journal(running, steps: [Self.step(1)], first: 1, events: Array(Self.events("r1").prefix(1)))
        #expect(try await a.record("r1") == running)
        #expect(try await a.runID(forKey: "key-r1") == "r1")
        #expect(try await a.steps(of: "r1") == [Self.step(1)])
        #expect(try await a.storedEvents("r1", after: 0) == .running)
        var failed = running
        failed.status = .failed
        failed.error = "boom"
        failed.finishedAt = Self.t0.addingTimeInterval(1)
        try await a.finish(RunFinish(record: failed, events: [RunEvent.failure(id: 2, runID: "r1", code: 500, detail: "boom")]))
        do {
            try await a.journal(running, steps: [Self.step(2)], first: 2, events: [])
            Issue.record("a journal write reached a finished run")
        } catch {
            #expect(error.kind == .failed)
        }
        #expect(try await a.record("r1") == failed)
        #expect(try await a.steps(of: "r1") == [Self.step(1)])
        #expect(try await a.takeOverInterrupted().isEmpty)
        try await a.close()
    }

    @Test func oneKeySentToTwoReplicasAtOnceStartsOneRun() async throws {
        let url = try await PostgresServer.shared().makeDatabase()
        let a = try await Self.replica(url, "a")
        let b = try await Self.replica(url, "b")
        for round in 0..<20 {
            let key = IdempotencyKey(key: "key-\(round)", route: "runs")
            // Different stories: the story's lock does not order them, only the key's index.
            let x = RunRecord(runID: "x\(round)", flow: "default", storyID: "sx\(round)", status: .queued, createdAt: Self.t0, idempotency: key)
            let y = RunRecord(runID: "y\(round)", flow: "default", storyID: "sy\(round)", status: .queued, createdAt: Self.t0, idempotency: key)
            async let first = a.arrive(x, durable: round % 2 == 0)
            async let second = b.arrive(y, durable: true)
            let arrivals = try await [first, second]
            let winner = try #require(try await a.runID(forKey: key.key))
            let loser = winner == "x\(round)" ? "y\(round)" : "x\(round)"
            #expect(arrivals.filter { $0 == .arrived }.count == 1)
            #expect(arrivals.contains(.duplicate(runID: winner)))
            #expect(try await b.record(loser) == nil)
        }
        try await a.close()
        try await b.close()
    }
}
