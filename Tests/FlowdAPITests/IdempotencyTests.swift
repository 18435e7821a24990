import FlowdTesting
import Foundation
import Stores
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The `Idempotency-Key` header of `POST /run`, `POST /runs` and `POST /runs/{id}/retry`
/// (SPEC "Idempotency keys"), against `flowd serve` on the JSONL store.
@Suite("idempotency keys (flowd as a process)")
struct IdempotencyTests {
    /// Flows: `default: [chain]`, `sleepy: [sleeper, chain]` (a mock of `sleepMilliseconds`
    /// first: long enough that a second request lands while the run is going, however loaded
    /// the machine), `failing: [boom]` (a mock that fails, `boom`). `chain` is a template,
    /// `<input>|<its last output in the story>`: a story's result lists the runs that
    /// committed before it (`Durable.chain` reads them: one run, or two).
    private func agents(sleepMilliseconds: Int = 6000) throws -> TempDirectory {
        let directory = try TempDirectory()
        try directory.write("agents/chain.yaml", "kind: template\nprompt: \"{{input}}|{{memory.last_output}}\"\n")
        try directory.write("agents/sleeper.yaml", "kind: mock\ndelay_ms: \(sleepMilliseconds)\noutput: \"slept\"\n")
        try directory.write("agents/boom.yaml", "kind: mock\nfail: \"boom\"\n")
        try directory.write("agents/flows.yaml", "default: [chain]\nsleepy: [sleeper, chain]\nfailing: [boom]\n")
        return directory
    }

    private func start(_ directory: TempDirectory, _ extra: [String] = []) async throws -> FlowdProcess {
        try await Durable.start(directory, stub: nil, extra)
    }

    @Test func theSameKeyTwiceOnPostRunsStartsOneRun() async throws {
        let directory = try agents()
        defer { directory.remove() }
        let flowd = try await start(directory)
        let client = flowd.client
        let body = #"{"flow": "sleepy", "input": "a", "story_id": "twice"}"#
        let first = try await client.post("/runs", json: body, key: "key-twice")
        #expect(first.status == 202, "\(first.text)")
        let id = try #require(first.json["run_id"]?.stringValue)
        #expect(first.json["status"]?.stringValue == "queued")
        #expect(first.header("Location") == "/runs/\(id)")
        #expect(first.header("X-Run-ID") == id)
        #expect(!first.isReplayed)

        let second = try await client.post("/runs", json: body, key: "key-twice")
        #expect(second.status == 202, "\(second.text)")
        #expect(second.json["run_id"]?.stringValue == id)
        #expect(second.isReplayed)
        #expect(second.header("X-Run-ID") == id)
        #expect(["queued", "running"].contains(second.json["status"]?.stringValue ?? ""), "\(second.text)")

        // Its status now, once it has finished.
        #expect(try await Durable.waitForRecord(client, id)["status"]?.stringValue == "succeeded")
        let third = try await client.post("/runs", json: body, key: "key-twice")
        #expect(third.status == 202)
        #expect(third.json["run_id"]?.stringValue == id)
        #expect(third.json["status"]?.stringValue == "succeeded")
        #expect(third.isReplayed)
        #expect(try await Durable.chain(client, story: "twice") == ["a"])  // one run

        // Another key with the same body is another run.
        let other = try await client.post("/runs", json: body, key: "key-twice-other")
        #expect(other.status == 202)
        #expect(other.json["run_id"]?.stringValue != id)
        #expect(!other.isReplayed)
        #expect(try await Durable.waitForRecord(client, other.json["run_id"]?.stringValue ?? "")["result"]?.stringValue == "a|probe|a|")
        #expect(await Durable.stop(flowd) == 0)
    }

    /// A `/run` replayed while the original still runs waits for it and answers its body;
    /// with `Accept: text/event-stream` the replay streams the run's events from the first.
    @Test func aSyncRunReplayedWhileTheOriginalRunsWaitsAndAnswersTheSameBody() async throws {
        let directory = try agents()
        defer { directory.remove() }
        let flowd = try await start(directory)
        let client = flowd.client
        let body = #"{"flow": "sleepy", "input": "w", "story_id": "wait"}"#
        let original = Task { try await client.post("/run", json: body, key: "key-wait") }
        try await Durable.waitUntil("the original run in flight") { try await Durable.runsInFlight(client) == 1 }
        let replay = try await client.post("/run", json: body, key: "key-wait")
        let answer = try await original.value
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.json["result"]?.stringValue == "w|")
        let id = try #require(answer.json["run_id"]?.stringValue)
        #expect(answer.header("X-Run-ID") == id)
        #expect(!answer.isReplayed)
        #expect(replay.status == 200, "\(replay.text)")
        #expect(replay.json["result"]?.stringValue == "w|")
        #expect(replay.json["run_id"]?.stringValue == id)
        #expect(replay.json.keys.contains("pending_docs"))
        #expect(replay.isReplayed)
        #expect(replay.header("X-Run-ID") == id)

        let stream = try await SSEConnection.open(port: flowd.port, "POST", "/run", headers: [("Idempotency-Key", "key-wait")], body: body)
        #expect(stream.head.status == 200)
        #expect(stream.head.header("Content-Type")?.hasPrefix("text/event-stream") == true)
        #expect(stream.head.header("X-Run-ID") == id)
        #expect(stream.head.isReplayed)
        let events = try await stream.all()
        Durable.expectIDsCountUp(events)
        #expect(events.first?.isProgress("started", agent: "sleeper") == true, "\(events.map(\.summary))")
        #expect(events.first?.json["run_id"]?.stringValue == id)
        #expect(events.last?.event == "done")
        #expect(events.last?.json["result"]?.stringValue == "w|")
        #expect(events.last?.json["run_id"]?.stringValue == id)
        #expect(try await Durable.chain(client, story: "wait") == ["w"])  // one run
        #expect(await Durable.stop(flowd) == 0)
    }

    /// A replayed `/run` answers what its run answered: 500 for a failed flow, 409 for a
    /// cancelled run.
    @Test func aReplayedSyncRunAnswersTheFailureOrCancellationOfItsRun() async throws {
        let directory = try agents(sleepMilliseconds: 5000)
        defer { directory.remove() }
        let flowd = try await start(directory)
        let client = flowd.client
        let failing = #"{"flow": "failing", "input": "f", "story_id": "fails"}"#
        let failed = try await client.post("/run", json: failing, key: "key-fails")
        #expect(failed.status == 500)
        #expect(failed.json["detail"]?.stringValue == "Flow execution failed: boom: boom")
        let failedReplay = try await client.post("/run", json: failing, key: "key-fails")
        #expect(failedReplay.status == 500)
        #expect(failedReplay.json["detail"]?.stringValue == "Flow execution failed: boom: boom")
        #expect(failedReplay.isReplayed)
        #expect(failedReplay.header("X-Run-ID") != nil)
        #expect(failedReplay.header("X-Run-ID") == failed.header("X-Run-ID"))
        try await Durable.waitUntil("the failing run counted") { try await Durable.runsFinished(client, flow: "failing") >= 1 }
        #expect(try await Durable.runsFinished(client, flow: "failing") == 1)  // the replay ran nothing

        // A streamed original, cancelled: its id is in its first event.
        let sleepy = #"{"flow": "sleepy", "input": "c", "story_id": "cancels"}"#
        let stream = try await SSEConnection.open(port: flowd.port, "POST", "/run",
                                                  headers: [("Idempotency-Key", "key-cancels")], body: sleepy)
        let first = try await stream.next()
        let id = try #require(first?.json["run_id"]?.stringValue)
        #expect(try await client.post("/runs/\(id)/cancel", json: "{}").status == 202)
        #expect(try await stream.all().last?.event == "cancelled")
        let cancelledReplay = try await client.post("/run", json: sleepy, key: "key-cancels")
        #expect(cancelledReplay.status == 409)
        #expect(cancelledReplay.json["detail"]?.stringValue == "Run cancelled")
        #expect(cancelledReplay.isReplayed)
        #expect(cancelledReplay.header("X-Run-ID") == id)
        try await Durable.waitUntil("the sleepy run counted") { try await Durable.runsFinished(client, flow: "sleepy") >= 1 }
        #expect(try await Durable.runsFinished(client, flow: "sleepy") == 1)
        #expect(await Durable.stop(flowd) == 0)
    }

    /// The same request is the same `flow`, `input`, `story_id` after defaults, on the same
    /// route (unknown fields and member order do not count); anything else with the key is
    /// 422 and runs nothing.
    @Test func theSameKeyWithAnotherRequestIs422AndRunsNothing() async throws {
        let directory = try agents()
        defer { directory.remove() }
        let flowd = try await start(directory)
        let client = flowd.client
        let first = try await client.post("/runs", json: #"{"input": "x", "story_id": "reuse"}"#, key: "key-reuse")
        #expect(first.status == 202)
        let id = try #require(first.json["run_id"]?.stringValue)

        for same in [#"{"flow": "default", "input": "x", "story_id": "reuse"}"#,
                     #"{"story_id": "reuse", "input": "x"}"#,
                     #"{"input": "x", "story_id": "reuse", "extra": [1, 2]}"#] {
            let replay = try await client.post("/runs", json: same, key: "key-reuse")
            #expect(replay.status == 202, "\(same): \(replay.text)")
            #expect(replay.json["run_id"]?.stringValue == id, "\(same)")
            #expect(replay.isReplayed, "\(same)")
        }
        let others: [(String, String)] = [
            ("/runs", #"{"input": "y", "story_id": "reuse"}"#),
            ("/runs", #"{"input": "x", "story_id": "reuse-2"}"#),
            ("/runs", #"{"flow": "sleepy", "input": "x", "story_id": "reuse"}"#),
            ("/run", #"{"input": "x", "story_id": "reuse"}"#),
        ]
        for (path, body) in others {
            let reused = try await client.post(path, json: body, key: "key-reuse")
            #expect(reused.status == 422, "\(path) \(body): \(reused.status) \(reused.text)")
            #expect(reused.text.lowercased().contains("key"), "\(path) \(body): \(reused.text)")
            #expect(!reused.isReplayed)
        }
        #expect(try await Durable.chain(client, story: "reuse") == ["x"])  // one run
        #expect(try await Durable.chain(client, story: "reuse-2") == [])  // none
        #expect(await Durable.stop(flowd) == 0)
    }

    /// 1 to 255 characters of %x21–7E; anything else is 422 with `loc`
    /// `["header", "idempotency-key"]` on every route that takes the header, before an
    /// unknown flow is looked at, and nothing runs.
    @Test func aMalformedKeyIs422WithTheHeaderLocationOnEveryRoute() async throws {
        let directory = try agents()
        defer { directory.remove() }
        let flowd = try await start(directory)
        let client = flowd.client
        let failed = try await client.post("/run", json: #"{"flow": "failing", "input": "x", "story_id": "bad-retry"}"#)
        #expect(failed.status == 500)
        let failedID = try #require(failed.header("X-Run-ID"), "a failed /run's answer names its run")

        let badKeys = ["", "has space", String(repeating: "k", count: 256), "clé", "tab\there"]
        let routes: [(String, String)] = [
            ("/run", #"{"input": "x", "story_id": "bad-key"}"#),
            ("/runs", #"{"input": "x", "story_id": "bad-key"}"#),
            ("/runs/\(failedID)/retry", "{}"),
            ("/runs", #"{"flow": "no-such-flow", "input": "x", "story_id": "bad-key"}"#),
        ]
        for key in badKeys {
            for (path, body) in routes {
                let response = try await client.post(path, json: body, key: key)
                let label = "key \(key.debugDescription) (\(key.unicodeScalars.count) chars) on \(path) \(body)"
                #expect(response.status == 422, "\(label): \(response.status) \(response.text)")
                let details = response.json["detail"]?.elements ?? []
                #expect(details.contains { $0["loc"]?.strings == ["header", "idempotency-key"] }, "\(label): \(response.text)")
                #expect(response.header("X-Run-ID") == nil, "\(label)")
            }
        }
        #expect(try await Durable.chain(client, story: "bad-key") == [])  // nothing ran
        try await Durable.waitUntil("the failing run counted") { try await Durable.runsFinished(client, flow: "failing") >= 1 }
        #expect(try await Durable.runsFinished(client, flow: "failing") == 1)  // no retry ran

        // The edges that are keys: one character, 255, every visible ASCII character.
        let visible = String((UInt8(0x21)...UInt8(0x7E)).map { Character(Unicode.Scalar($0)) })
        for (k, key) in ["!", String(repeating: "~", count: 255), visible].enumerated() {
            let response = try await client.post("/runs", json: #"{"input": "x", "story_id": "good-key-\#(k)"}"#, key: key)
            #expect(response.status == 202, "key of \(key.count) chars: \(response.text)")
            let replay = try await client.post("/runs", json: #"{"input": "x", "story_id": "good-key-\#(k)"}"#, key: key)
            #expect(replay.isReplayed, "key of \(key.count) chars")
            #expect(replay.json["run_id"]?.stringValue == response.json["run_id"]?.stringValue)
        }
        #expect(await Durable.stop(flowd) == 0)
    }

    /// A request refused with 503 (at `--max-runs`) stores no key: the same key later starts
    /// a run. A stored key is still replayed at `--max-runs` and while draining.
    @Test func aRefusedRequestStoresNoKeyAndAStoredKeyIsReplayedAtMaxRunsAndWhileDraining() async throws {
        let directory = try agents(sleepMilliseconds: 3000)
        defer { directory.remove() }
        let flowd = try await start(directory, ["--max-runs", "1", "--drain-timeout", "30"])
        let client = flowd.client
        let busy = try await client.post("/runs", json: #"{"flow": "sleepy", "input": "0", "story_id": "busy-0"}"#)
        #expect(busy.status == 202)
        let busyID = try #require(busy.json["run_id"]?.stringValue)
        let body = #"{"flow": "sleepy", "input": "1", "story_id": "busy-1"}"#
        let refused = try await client.post("/runs", json: body, key: "key-refused")
        #expect(refused.status == 503, "\(refused.text)")
        #expect(refused.header("Retry-After") != nil)
        #expect(refused.header("X-Run-ID") == nil)
        #expect(!refused.isReplayed)
        try await Durable.waitForRecord(client, busyID)

        let admitted = try await client.post("/runs", json: body, key: "key-refused")
        #expect(admitted.status == 202, "\(admitted.text)")
        #expect(!admitted.isReplayed, "a refused request's key was stored")
        let id = try #require(admitted.json["run_id"]?.stringValue)
        // It is in flight: at --max-runs a new key is refused, the stored one replayed.
        let atMax = try await client.post("/runs", json: body, key: "key-refused")
        #expect(atMax.status == 202, "\(atMax.text)")
        #expect(atMax.isReplayed)
        #expect(atMax.json["run_id"]?.stringValue == id)
        let otherKey = try await client.post("/runs", json: #"{"flow": "sleepy", "input": "2", "story_id": "busy-2"}"#, key: "key-other")
        #expect(otherKey.status == 503)

        flowd.signal(SIGTERM)
        try await Durable.waitUntil("draining") { try await client.get("/readyz").status == 503 }
        let whileDraining = try await client.post("/runs", json: body, key: "key-refused")
        #expect(whileDraining.status == 202, "\(whileDraining.text)")
        #expect(whileDraining.isReplayed)
        #expect(whileDraining.json["run_id"]?.stringValue == id)
        #expect(try await client.post("/runs", json: #"{"flow": "sleepy", "input": "3", "story_id": "busy-3"}"#, key: "key-new").status == 503)
        #expect(await flowd.waitForExit() == 0)
        let restarted = try await start(directory)
        #expect(try await Durable.chain(restarted.client, story: "busy-1") == ["1"])  // one run
        #expect(try await Durable.chain(restarted.client, story: "busy-2") == [])  // refused: none
        #expect(await Durable.stop(restarted) == 0)
    }

    /// The key is stored durably before the answer: kill -9 right after the answers, and the
    /// restarted server replays both runs (the background one resumed meanwhile).
    @Test func aKeySurvivesKillDashNineRightAfterTheAnswer() async throws {
        // The background run must still be sleeping at the kill, on a loaded machine too.
        let directory = try agents(sleepMilliseconds: 4000)
        defer { directory.remove() }
        let first = try await start(directory)
        let background = #"{"flow": "sleepy", "input": "b", "story_id": "kept-runs"}"#
        let started = try await first.client.post("/runs", json: background, key: "key-kept-runs")
        #expect(started.status == 202)
        let id = try #require(started.json["run_id"]?.stringValue)
        let plain = #"{"input": "p", "story_id": "kept-run"}"#
        let answered = try await first.client.post("/run", json: plain, key: "key-kept-run")
        #expect(answered.status == 200)
        await Durable.kill(first)

        let second = try await start(directory)
        let client = second.client
        let replay = try await client.post("/runs", json: background, key: "key-kept-runs")
        #expect(replay.status == 202, "\(replay.text)")
        #expect(replay.isReplayed)
        #expect(replay.json["run_id"]?.stringValue == id)
        let record = try await Durable.waitForRecord(client, id)
        #expect(record["status"]?.stringValue == "succeeded")
        #expect(record["resumed"]?.int == 1)
        let plainReplay = try await client.post("/run", json: plain, key: "key-kept-run")
        #expect(plainReplay.status == 200, "\(plainReplay.text)")
        #expect(plainReplay.isReplayed)
        #expect(plainReplay.json["result"]?.stringValue == "p|")
        #expect(plainReplay.json["run_id"]?.stringValue == answered.json["run_id"]?.stringValue)
        #expect(try await Durable.chain(client, story: "kept-runs") == ["b"])  // one run each
        #expect(try await Durable.chain(client, story: "kept-run") == ["p"])
        #expect(await Durable.stop(second) == 0)
    }

    /// A race, 20 rounds: one key sent four times at once (to `/runs`, or to `/run`) starts
    /// one run; every answer names it and all but one say they replay it.
    @Test func oneKeySentFourTimesAtOnceStartsOneRun() async throws {
        let directory = try agents()
        defer { directory.remove() }
        let flowd = try await start(directory)
        let client = flowd.client
        let began = ContinuousClock.now
        for round in 0..<20 {
            let path = round % 2 == 0 ? "/runs" : "/run"
            let body = #"{"input": "r\#(round)", "story_id": "race-\#(round)"}"#
            let answers = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<4 { group.addTask { try await client.post(path, json: body, key: "key-race-\(round)") } }
                return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
            }
            let label = "round \(round) (\(path))"
            #expect(answers.allSatisfy { $0.status == (path == "/runs" ? 202 : 200) }, "\(label): \(answers.map { "\($0.status) \($0.text)" })")
            #expect(Set(answers.map { $0.json["run_id"]?.stringValue ?? "" }).count == 1, "\(label): \(answers.map(\.text))")
            #expect(answers.filter { !$0.isReplayed }.count == 1, "\(label): \(answers.map(\.isReplayed))")
            #expect(Set(answers.map { $0.header("X-Run-ID") ?? "" }) == Set(answers.map { $0.json["run_id"]?.stringValue ?? "" }))
            #expect(try await Durable.waitForRecord(client, answers[0].json["run_id"]?.stringValue ?? "")["status"]?.stringValue == "succeeded")
            #expect(try await Durable.chain(client, story: "race-\(round)") == ["r\(round)"], "\(label)")  // one run
        }
        #expect(ContinuousClock.now - began < scaled(.seconds(30)))
        #expect(await Durable.stop(flowd) == 0)
    }
}
