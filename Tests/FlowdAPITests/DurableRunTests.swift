import FlowdTesting
import Foundation
import Stores
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Durable runs on the JSONL store: `flowd serve` killed with SIGKILL mid-flow and started
/// again on the same data dir resumes what it left (SPEC "Durable runs"); `--on-restart fail`
/// fails it instead; `POST /runs/{id}/retry` goes on from the failed step.
///
/// The flows (see `Durable.agents`) start with an llm step whose stub counts the calls: a
/// journaled llm step is never paid twice.
@Suite("durable runs (flowd as a process)")
struct DurableRunTests {
    /// kill -9 during the slow step of `[thinker (llm), slow, tail]`: the restarted server
    /// goes on at `slow`, with the thinker's journaled output, and the stub is called once.
    @Test func aRunKilledMidFlowIsResumedAfterItsJournaledStepAndTheLLMIsNotCalledAgain() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let first = try await Durable.start(directory, stub: stub)
        let started = try await first.client.post("/runs", json: #"{"input": "r1", "story_id": "crash"}"#)
        #expect(started.status == 202)
        let id = try #require(started.json["run_id"]?.stringValue, "\(started.status) \(started.text)")
        let before = try await Durable.waitForEvent(port: first.port, runID: id, "slow started") {
            $0.isProgress("started", agent: "slow")
        }
        #expect(before.contains { $0.isProgress("completed", agent: "thinker") })
        #expect(stub.calls(model: "thinker-model") == 1)
        await Durable.kill(first)

        let second = try await Durable.start(directory, stub: stub)
        let record = try await Durable.waitForRecord(second.client, id)
        #expect(record["status"]?.stringValue == "succeeded", "\(record)")
        #expect(record["result"]?.stringValue == "r1:thought<")
        #expect(record["resumed"]?.int == 1)
        #expect(record["retry_of"] == nil)
        #expect(stub.callCount == 1, "the journaled llm step ran again: \(stub.callCount) calls")

        let events = try await Durable.events(port: second.port, runID: id)
        Durable.expectIDsCountUp(events)
        let resumed = events.filter { $0.progressStatus == "resumed" }
        #expect(resumed.count == 1, "\(events.map(\.summary))")
        #expect(resumed.first?.agent == "slow")
        #expect(resumed.first?.json["run_id"]?.stringValue == id)
        #expect(resumed.first?.json["timestamp"]?.stringValue != nil)
        if let at = events.firstIndex(where: { $0.progressStatus == "resumed" }) {
            // What was stored before the kill comes first, unchanged: the thinker's step.
            #expect(events[..<at].contains { $0.isProgress("completed", agent: "thinker") })
            #expect(events[..<at].contains { $0.event == "result" && $0.agent == "thinker" && $0.json["data"]?.stringValue == Durable.thought })
            // Then the agent it goes on with, and nothing of the thinker again.
            #expect(at + 1 < events.count && events[at + 1].isProgress("started", agent: "slow"), "\(events.map(\.summary))")
            #expect(!events[(at + 1)...].contains { $0.agent == "thinker" }, "\(events.map(\.summary))")
            #expect(events[(at + 1)...].contains { $0.event == "result" && $0.agent == "slow" && $0.json["data"]?.stringValue == "slow after thought" })
        }
        #expect(events.filter { $0.isProgress("started", agent: "thinker") }.count == 1)
        #expect(events.filter { ["done", "error", "cancelled"].contains($0.event ?? "") }.map(\.event) == ["done"])
        #expect(events.last?.json["result"]?.stringValue == "r1:thought<")

        // Memory was committed once, with every agent of the run.
        let thinker = try await Durable.context(second.client, agent: "thinker", story: "crash")
        #expect(thinker?["status"]?.stringValue == "completed")
        #expect(thinker?["last_output"]?.stringValue == Durable.thought)
        let slow = try await Durable.context(second.client, agent: "slow", story: "crash")
        #expect(slow?["last_output"]?.stringValue == "slow after thought")
        #expect(await Durable.stop(second) == 0)
    }

    /// Two runs of the story queued behind the one killed mid-flow: after the restart the
    /// three run in arrival order, the killed one first, each `resumed: 1`.
    @Test func runsQueuedBehindAKilledRunAreResumedInArrivalOrderAfterIt() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let first = try await Durable.start(directory, stub: stub)
        let r1 = try #require(try await first.client.post("/runs", json: #"{"input": "r1", "story_id": "line"}"#).json["run_id"]?.stringValue)
        _ = try await Durable.waitForEvent(port: first.port, runID: r1, "slow started") { $0.isProgress("started", agent: "slow") }
        let r2 = try #require(try await first.client.post("/runs", json: #"{"flow": "quick", "input": "r2", "story_id": "line"}"#).json["run_id"]?.stringValue)
        let r3 = try #require(try await first.client.post("/runs", json: #"{"flow": "quick", "input": "r3", "story_id": "line"}"#).json["run_id"]?.stringValue)
        #expect(try await first.client.get("/runs/\(r2)").json["status"]?.stringValue == "queued")
        #expect(try await first.client.get("/runs/\(r3)").json["status"]?.stringValue == "queued")
        #expect(stub.callCount == 1)
        await Durable.kill(first)

        let second = try await Durable.start(directory, stub: stub)
        let records = [
            try await Durable.waitForRecord(second.client, r1),
            try await Durable.waitForRecord(second.client, r2),
            try await Durable.waitForRecord(second.client, r3),
        ]
        #expect(records.map { $0["status"]?.stringValue } == ["succeeded", "succeeded", "succeeded"], "\(records)")
        #expect(records.map { $0["resumed"]?.int } == [1, 1, 1])
        // Each saw the story's last output as the one before it left it: one chain, in order.
        #expect(records.map { $0["result"]?.stringValue } == [
            "r1:thought<", "r2:thought<r1:thought<", "r3:thought<r2:thought<r1:thought<",
        ])
        let finishedAt = records.map { $0["finished_at"]?.stringValue ?? "" }
        #expect(finishedAt[0] <= finishedAt[1] && finishedAt[1] <= finishedAt[2], "\(finishedAt)")
        // r1's llm step is not paid again; r2's and r3's ran once each after the restart.
        #expect(stub.callCount == 3, "\(stub.callCount) llm calls")

        let firstEvents = try await Durable.events(port: second.port, runID: r1)
        Durable.expectIDsCountUp(firstEvents, "r1")
        #expect(firstEvents.filter { $0.progressStatus == "resumed" }.map(\.agent) == ["slow"])
        for id in [r2, r3] {
            // A queued run's events begin with its resumption, naming its first agent.
            let events = try await Durable.events(port: second.port, runID: id)
            Durable.expectIDsCountUp(events, id)
            #expect(events.first?.isProgress("resumed", agent: "thinker") == true, "\(events.map(\.summary))")
            #expect(events.count > 1 && events[1].isProgress("started", agent: "thinker"), "\(events.map(\.summary))")
            #expect(events.filter { $0.progressStatus == "resumed" }.count == 1)
            #expect(events.last?.event == "done")
        }
        #expect(await Durable.stop(second) == 0)
    }

    enum FailSetting: String, CaseIterable, CustomTestStringConvertible {
        case flag, environment
        var testDescription: String { self == .flag ? "--on-restart fail" : "FLOWD_ON_RESTART=fail" }
    }

    /// `--on-restart fail` (or `FLOWD_ON_RESTART=fail`): the runs an earlier process left
    /// running or queued end `failed`, with a detail saying flowd stopped; nothing runs again.
    @Test(arguments: FailSetting.allCases)
    func withOnRestartFailInterruptedRunsEndFailed(_ setting: FailSetting) async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let first = try await Durable.start(directory, stub: stub)
        let r1 = try #require(try await first.client.post("/runs", json: #"{"input": "r1", "story_id": "lost"}"#).json["run_id"]?.stringValue)
        _ = try await Durable.waitForEvent(port: first.port, runID: r1, "slow started") { $0.isProgress("started", agent: "slow") }
        let r2 = try #require(try await first.client.post("/runs", json: #"{"flow": "quick", "input": "r2", "story_id": "lost"}"#).json["run_id"]?.stringValue)
        await Durable.kill(first)

        let second = try await Durable.start(directory, stub: stub,
                                             setting == .flag ? ["--on-restart", "fail"] : [],
                                             environment: setting == .environment ? ["FLOWD_ON_RESTART": "fail"] : [:])
        for (id, was) in [(r1, "running"), (r2, "queued")] {
            let record = try await Durable.waitForRecord(second.client, id)
            #expect(record["status"]?.stringValue == "failed", "\(id) (was \(was)): \(record)")
            let error = record["error"]?.stringValue ?? ""
            #expect(error.contains("flowd stopped"), "\(id) (was \(was)): \(error)")
            #expect(record["finished_at"]?.stringValue != nil)
            #expect((record["resumed"]?.int ?? 0) == 0)
            let events = try await Durable.events(port: second.port, runID: id)
            #expect(events.last?.event == "error", "\(events.map(\.summary))")
            #expect(!events.contains { $0.progressStatus == "resumed" })
        }
        // Half a second later nothing has taken them up again (a wait in which nothing must
        // happen: the behaviour under test, not a synchronisation).
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await second.client.get("/runs/\(r1)").json["status"]?.stringValue == "failed")
        #expect(stub.callCount == 1)
        #expect(try await Durable.context(second.client, agent: "thinker", story: "lost") == nil)  // memory untouched
        #expect(await Durable.stop(second) == 0)
    }

    /// A plain `POST /run` whose process dies under it is resumed too, and the client's retry
    /// with its `Idempotency-Key` gets the outcome (waiting for it), without a second run.
    @Test func aSyncRunCutOffByKillDashNineIsResumedAndItsKeyGetsTheOutcome() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let first = try await Durable.start(directory, stub: stub)
        let body = #"{"input": "cut", "story_id": "sync-cut"}"#
        // A streamed /run: its id comes in the head and the first event.
        let stream = try await SSEConnection.open(port: first.port, "POST", "/run",
                                                  headers: [("Idempotency-Key", "sync-cut-key")], body: body)
        #expect(stream.head.status == 200)
        var seen: [SSEEvent] = []
        while let event = try await stream.next() {
            seen.append(event)
            if event.isProgress("started", agent: "slow") { break }
        }
        let id = try #require(seen.first?.json["run_id"]?.stringValue, "\(seen.map(\.summary))")
        #expect(stream.head.header("X-Run-ID") == id)
        #expect(seen.last?.isProgress("started", agent: "slow") == true)
        await Durable.kill(first)
        stream.close()

        let second = try await Durable.start(directory, stub: stub)
        let replay = try await second.client.post("/run", json: body, key: "sync-cut-key")
        #expect(replay.status == 200, "\(replay.text)")
        #expect(replay.json["result"]?.stringValue == "cut:thought<")
        #expect(replay.json["run_id"]?.stringValue == id)
        #expect(replay.isReplayed)
        #expect(replay.header("X-Run-ID") == id)
        let record = try await Durable.waitForRecord(second.client, id)
        #expect(record["status"]?.stringValue == "succeeded")
        #expect(record["resumed"]?.int == 1)
        #expect(stub.callCount == 1)
        // One run of the story: a probe after it sees just that one.
        #expect(try await Durable.chain(second.client, story: "sync-cut", flow: "quick", separator: "<") == ["cut:thought"])
        #expect(await Durable.stop(second) == 0)
    }
}

/// `POST /runs/{id}/retry`: a new run of the same flow, input and story that starts at the
/// agent that failed (or was cancelled), with the journaled outputs of the ones before it.
@Suite("retry from the failed step (flowd as a process)")
struct DurableRetryTests {
    /// `[thinker, gate, joiner]` whose gate (an llm step) fails on its first call: the retry
    /// succeeds without calling the thinker again and sends no event of it.
    @Test func aFailedRunRetriedGoesOnFromItsFailedStep() async throws {
        let stub = try Durable.stub(gateFailures: 1)
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let flowd = try await Durable.start(directory, stub: stub)
        let client = flowd.client
        let failed = try await client.post("/run", json: #"{"flow": "gated", "input": "x", "story_id": "retry"}"#)
        #expect(failed.status == 500)
        #expect((failed.json["detail"]?.stringValue)?.contains("gate") == true, "\(failed.text)")
        let original = try #require(failed.header("X-Run-ID"), "a failed /run's answer names its run")
        #expect(try await client.get("/runs/\(original)").json["status"]?.stringValue == "failed")
        #expect(stub.calls(model: "thinker-model") == 1)
        #expect(stub.calls(model: "gate-model") == 1)

        let retried = try await client.post("/runs/\(original)/retry", json: "{}", key: "retry-key-1")
        #expect(retried.status == 202, "\(retried.text)")
        let id = try #require(retried.json["run_id"]?.stringValue)
        #expect(id != original)
        #expect(retried.json["status"]?.stringValue == "queued")
        #expect(retried.header("Location") == "/runs/\(id)")
        #expect(retried.header("X-Run-ID") == id)
        #expect(!retried.isReplayed)

        let record = try await Durable.waitForRecord(client, id)
        #expect(record["status"]?.stringValue == "succeeded", "\(record)")
        #expect(record["result"]?.stringValue == "thought+gated")
        #expect(record["retry_of"]?.stringValue == original)
        #expect(record["flow"]?.stringValue == "gated")
        #expect(record["story_id"]?.stringValue == "retry")
        #expect(record["resumed"]?.int == 0)
        #expect(stub.calls(model: "thinker-model") == 1, "the thinker ran again")
        #expect(stub.calls(model: "gate-model") == 2)

        // The retry's own events: from the gate on, numbered from 1, nothing of the thinker.
        let events = try await Durable.events(port: flowd.port, runID: id)
        Durable.expectIDsCountUp(events)
        #expect(events.first?.isProgress("started", agent: "gate") == true, "\(events.map(\.summary))")
        #expect(!events.contains { $0.agent == "thinker" }, "\(events.map(\.summary))")
        #expect(events.last?.event == "done")
        #expect(events.last?.json["result"]?.stringValue == "thought+gated")
        // The original is as it was.
        let originalRecord = try await client.get("/runs/\(original)").json
        #expect(originalRecord["status"]?.stringValue == "failed")
        #expect(originalRecord["retry_of"] == nil)
        // The journaled thinker's output is part of the retry's memory commit.
        #expect(try await Durable.context(client, agent: "thinker", story: "retry")?["last_output"]?.stringValue == Durable.thought)
        #expect(try await Durable.context(client, agent: "thinker", story: "retry")?["status"]?.stringValue == "completed")
        #expect(try await Durable.context(client, agent: "gate", story: "retry")?["last_output"]?.stringValue == "gated")
        #expect(try await Durable.context(client, agent: "joiner", story: "retry")?["last_output"]?.stringValue == "thought+gated")

        // The retry's key: the same retry again is a replay; on another route, a reuse.
        let again = try await client.post("/runs/\(original)/retry", json: "{}", key: "retry-key-1")
        #expect(again.status == 202)
        #expect(again.json["run_id"]?.stringValue == id)
        #expect(again.json["status"]?.stringValue == "succeeded")
        #expect(again.isReplayed)
        #expect(again.header("X-Run-ID") == id)
        let reused = try await client.post("/runs", json: #"{"flow": "gated", "input": "x", "story_id": "retry"}"#, key: "retry-key-1")
        #expect(reused.status == 422, "\(reused.text)")
        #expect(stub.calls(model: "gate-model") == 2)

        // Other statuses are 409, an unknown run 404.
        let ofSucceeded = try await client.post("/runs/\(id)/retry", json: "{}")
        #expect(ofSucceeded.status == 409, "\(ofSucceeded.text)")
        #expect(ofSucceeded.json["detail"] != nil)
        #expect(try await client.post("/runs/no-such-run/retry", json: "{}").status == 404)
        #expect(stub.calls(model: "thinker-model") == 1)
        #expect(await Durable.stop(flowd) == 0)
    }

    /// A running and a queued run cannot be retried (409); a cancelled one can: the retry
    /// starts at the agent that was cancelled, after the queued run of the story.
    @Test func aCancelledRunRetriedGoesOnFromTheCancelledStep() async throws {
        let stub = try Durable.stub()
        defer { stub.stop() }
        // Long enough for the checks and the cancel to land while it runs on a loaded machine.
        let directory = try Durable.agents(slowMilliseconds: 10_000)
        defer { directory.remove() }
        let flowd = try await Durable.start(directory, stub: stub)
        let client = flowd.client
        let r1 = try #require(try await client.post("/runs", json: #"{"input": "r1", "story_id": "cancel"}"#).json["run_id"]?.stringValue)
        _ = try await Durable.waitForEvent(port: flowd.port, runID: r1, "slow started") { $0.isProgress("started", agent: "slow") }
        let r2 = try #require(try await client.post("/runs", json: #"{"flow": "quick", "input": "r2", "story_id": "cancel"}"#).json["run_id"]?.stringValue)
        #expect(try await client.post("/runs/\(r1)/retry", json: "{}").status == 409)  // running
        #expect(try await client.post("/runs/\(r2)/retry", json: "{}").status == 409)  // queued
        #expect(try await client.post("/runs/\(r1)/cancel", json: "{}").status == 202)
        #expect(try await Durable.waitForRecord(client, r1)["status"]?.stringValue == "cancelled")

        let retried = try await client.post("/runs/\(r1)/retry", json: "{}")
        #expect(retried.status == 202, "\(retried.text)")
        let id = try #require(retried.json["run_id"]?.stringValue)
        let record = try await Durable.waitForRecord(client, id)
        #expect(record["status"]?.stringValue == "succeeded", "\(record)")
        #expect(record["retry_of"]?.stringValue == r1)
        // r2 ran first (arrived first), then the retry: the story's chain shows it.
        #expect(try await Durable.waitForRecord(client, r2)["result"]?.stringValue == "r2:thought<")
        #expect(record["result"]?.stringValue == "r1:thought<r2:thought<")
        #expect(stub.callCount == 2, "r1's thinker was called again: \(stub.callCount) calls")
        let events = try await Durable.events(port: flowd.port, runID: id)
        Durable.expectIDsCountUp(events)
        #expect(events.first?.isProgress("started", agent: "slow") == true, "\(events.map(\.summary))")
        #expect(!events.contains { $0.agent == "thinker" })
        #expect(await Durable.stop(flowd) == 0)
    }
}
