import FlowdTesting
import Foundation
import Stores
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Durable runs and idempotency keys across replicas on one PostgreSQL database (a throwaway
/// server, a database per test): the runs of a replica killed with SIGKILL are taken over
/// by exactly one live replica once its lease expires, and resumed; a key is unique in the
/// database.
@Suite("durable runs on replicas (PostgreSQL)", .serialized,
       .enabled(if: PostgresServer.unavailableReason == nil, "PostgreSQL is not installed"))
struct DurableReplicaTests {
    private static let leaseTTL = "2"

    private func replica(_ directory: TempDirectory, _ url: String, stub: StubLLMServer?,
                         _ extra: [String] = []) async throws -> FlowdProcess {
        try await FlowdProcess.start(serve: ["--agents", directory.path("agents").path, "--store", "postgres",
                                             "--database-url", url, "--lease-ttl", Self.leaseTTL] + extra,
                                     environment: stub?.environment ?? [:])
    }

    private func database() async throws -> String {
        try await PostgresServer.shared().makeDatabase()
    }

    private func stop(_ replicas: FlowdProcess...) async {
        for replica in replicas { replica.signal(SIGTERM) }
        for replica in replicas { _ = await replica.waitForExit() }
    }

    /// A runs `[thinker (llm), slow, tail]` and is killed during `slow`; B and C are live.
    /// Once A's lease has expired, one of them resumes the run at `slow`: it succeeds,
    /// `resumed: 1`, the llm was called once, and there is one `resumed` event, one `done`.
    @Test func aRunOfAKilledReplicaIsResumedByExactlyOneLiveReplicaAfterTheLease() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url, stub: stub)
        let b = try await replica(directory, url, stub: stub)
        let c = try await replica(directory, url, stub: stub)
        let started = try await a.client.post("/runs", json: #"{"input": "r1", "story_id": "taken"}"#)
        #expect(started.status == 202)
        let id = try #require(started.json["run_id"]?.stringValue, "\(started.text)")
        _ = try await Durable.waitForEvent(port: a.port, runID: id, "slow started") { $0.isProgress("started", agent: "slow") }
        #expect(stub.callCount == 1)
        await Durable.kill(a)

        let record = try await Durable.waitForRecord(b.client, id, timeout: .seconds(40))
        #expect(record["status"]?.stringValue == "succeeded", "\(record)")
        #expect(record["result"]?.stringValue == "r1:thought<")
        #expect(record["resumed"]?.int == 1, "resumed by more than one replica? \(record)")
        #expect(stub.callCount == 1, "the journaled llm step ran again: \(stub.callCount) calls")
        #expect(try await c.client.get("/runs/\(id)").json["status"]?.stringValue == "succeeded")

        let events = try await Durable.events(port: c.port, runID: id)
        Durable.expectIDsCountUp(events)
        let resumed = events.filter { $0.progressStatus == "resumed" }
        #expect(resumed.map(\.agent) == ["slow"], "\(events.map(\.summary))")
        if let at = events.firstIndex(where: { $0.progressStatus == "resumed" }) {
            #expect(at + 1 < events.count && events[at + 1].isProgress("started", agent: "slow"), "\(events.map(\.summary))")
            #expect(events[(at + 1)...].filter { $0.isProgress("started", agent: "slow") }.count == 1, "\(events.map(\.summary))")
            #expect(!events[(at + 1)...].contains { $0.agent == "thinker" })
        }
        #expect(events.filter { ["done", "error", "cancelled"].contains($0.event ?? "") }.map(\.event) == ["done"])
        #expect(try await Durable.context(b.client, agent: "thinker", story: "taken")?["last_output"]?.stringValue == Durable.thought)
        // Still one run, and settled: no replica takes it up again. (The wait is the
        // behaviour under test, that nothing happens in it, not a synchronisation.)
        try await Task.sleep(for: .milliseconds(500))
        let later = try await c.client.get("/runs/\(id)").json
        #expect(later["status"]?.stringValue == "succeeded")
        #expect(later["resumed"]?.int == 1)
        #expect(stub.callCount == 1)
        await stop(b, c)
    }

    /// With `--on-restart fail` on the live replica, the dead one's running and queued runs
    /// end `failed` instead, seen by every replica.
    @Test func withOnRestartFailALiveReplicaFailsTheKilledReplicasRuns() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url, stub: stub)
        let b = try await replica(directory, url, stub: stub, ["--on-restart", "fail"])
        let running = try #require(try await a.client.post("/runs", json: #"{"input": "r1", "story_id": "dropped"}"#).json["run_id"]?.stringValue)
        _ = try await Durable.waitForEvent(port: a.port, runID: running, "slow started") { $0.isProgress("started", agent: "slow") }
        let queued = try #require(try await a.client.post("/runs", json: #"{"flow": "quick", "input": "r2", "story_id": "dropped"}"#).json["run_id"]?.stringValue)
        await Durable.kill(a)

        for id in [running, queued] {
            let record = try await Durable.waitForRecord(b.client, id, timeout: .seconds(40))
            #expect(record["status"]?.stringValue == "failed", "\(record)")
            let error = record["error"]?.stringValue ?? ""
            #expect(error.contains("lease") || error.contains("stopped"), "\(error)")
            let events = try await Durable.events(port: b.port, runID: id)
            #expect(events.last?.event == "error")
            #expect(!events.contains { $0.progressStatus == "resumed" })
        }
        #expect(stub.callCount == 1)
        await stop(b)
    }

    /// A race, 20 rounds: one key sent at once to two replicas, twice each (to `/runs`, or to
    /// `/run`), starts one run; every answer names it, all but one replay it.
    @Test func oneKeySentToTwoReplicasAtOnceStartsOneRun() async throws {
        let directory = try TempDirectory()
        defer { directory.remove() }
        try directory.write("agents/chain.yaml", "kind: template\nprompt: \"{{input}}|{{memory.last_output}}\"\n")
        try directory.write("agents/flows.yaml", "default: [chain]\n")
        let url = try await database()
        let a = try await replica(directory, url, stub: nil)
        let b = try await replica(directory, url, stub: nil)
        let clients = [a.client, b.client]
        let began = ContinuousClock.now
        for round in 0..<20 {
            let path = round % 2 == 0 ? "/runs" : "/run"
            let body = #"{"input": "r\#(round)", "story_id": "race-\#(round)"}"#
            let answers = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for k in 0..<4 { group.addTask { try await clients[k % 2].post(path, json: body, key: "key-race-\(round)") } }
                return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
            }
            let label = "round \(round) (\(path))"
            #expect(answers.allSatisfy { $0.status == (path == "/runs" ? 202 : 200) }, "\(label): \(answers.map { "\($0.status) \($0.text)" })")
            let ids = Set(answers.map { $0.json["run_id"]?.stringValue ?? "" })
            #expect(ids.count == 1, "\(label): \(answers.map(\.text))")
            #expect(answers.filter { !$0.isReplayed }.count == 1, "\(label): \(answers.map(\.isReplayed))")
            #expect(Set(answers.map { $0.header("X-Run-ID") ?? "" }) == ids, "\(label)")
            // One run of the story: a probe after it sees just that one.
            #expect(try await Durable.chain(clients[round % 2], story: "race-\(round)") == ["r\(round)"], "\(label)")
        }
        #expect(ContinuousClock.now - began < scaled(.seconds(40)))
        await stop(a, b)
    }

    /// A `/run` whose replica dies under it is resumed by another, and the client's retry
    /// there with its `Idempotency-Key` waits for it and gets the outcome.
    @Test func aSyncRunOfAKilledReplicaIsAnsweredThroughItsKeyOnAnother() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url, stub: stub)
        let b = try await replica(directory, url, stub: stub)
        let body = #"{"input": "cut", "story_id": "sync-taken"}"#
        // A streamed /run on A: its id comes in the head and the first event.
        let stream = try await SSEConnection.open(port: a.port, "POST", "/run",
                                                  headers: [("Idempotency-Key", "key-sync-taken")], body: body)
        #expect(stream.head.status == 200)
        var seen: [SSEEvent] = []
        while let event = try await stream.next() {
            seen.append(event)
            if event.isProgress("started", agent: "slow") { break }
        }
        let id = try #require(seen.first?.json["run_id"]?.stringValue, "\(seen.map(\.summary))")
        #expect(seen.last?.isProgress("started", agent: "slow") == true)
        await Durable.kill(a)
        stream.close()

        let replay = try await b.client.post("/run", json: body, key: "key-sync-taken")
        #expect(replay.status == 200, "\(replay.text)")
        #expect(replay.isReplayed)
        #expect(replay.json["run_id"]?.stringValue == id)
        #expect(replay.json["result"]?.stringValue == "cut:thought<")
        #expect(replay.header("X-Run-ID") == id)
        let record = try await Durable.waitForRecord(b.client, id)
        #expect(record["resumed"]?.int == 1)
        #expect(stub.callCount == 1)
        #expect(try await Durable.chain(b.client, story: "sync-taken", flow: "quick", separator: "<") == ["cut:thought"])
        await stop(b)
    }
}
