import FlowdSync
import FlowdTesting
import Foundation
import Stores
import Testing

/// The real `flowd` binary as a child process: signals, drain, crashes.
@Suite("flowd as a process")
struct ProcessTests {
    private func slowAgents(delayMilliseconds: Int) throws -> TempDirectory {
        let directory = try TempDirectory()
        try directory.write("agents/sleeper.yaml", "kind: mock\ndelay_ms: \(delayMilliseconds)\noutput: \"woke\"\n")
        try directory.write("agents/flows.yaml", "default: [sleeper]\n")
        return directory
    }

    private func arguments(_ directory: TempDirectory, _ extra: [String] = []) -> [String] {
        ["--agents", directory.path("agents").path, "--docs", directory.path("docs").path, "--data", directory.path("data").path] + extra
    }

    /// Waits until the server has `count` runs in flight (its metrics say so), rather than
    /// sleeping: on a loaded machine a fixed second is not always enough for the runs to
    /// arrive, and on an idle one it is a second lost.
    private func waitForRunsInFlight(_ count: Int, _ client: any TestClient) async throws {
        let deadline = ContinuousClock.now + scaled(.seconds(30))
        while ContinuousClock.now < deadline {
            let samples = try PrometheusText.parse(try await client.get("/metrics").text)
            if samples.contains(where: { $0.name == "flowd_runs_in_flight" && $0.value == Double(count) }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the server never had \(count) runs in flight")
    }

    @Test func sigtermDrainsRunsInFlightWhileProbesAndNewRunsAreAnswered() async throws {
        // The probes below must all land while the runs are still going: under a sanitizer
        // (FLOWD_TIME_SCALE), or beside the whole suite on a loaded machine, 2.5 s was not
        // always enough.
        let runTime = scaled(.milliseconds(10_000))
        let directory = try slowAgents(delayMilliseconds: Int(runTime.components.seconds * 1000 + runTime.components.attoseconds / 1_000_000_000_000_000))
        defer { directory.remove() }
        let drainTimeout = Int(runTime.components.seconds) * 4 + 10
        let flowd = try await FlowdProcess.start(serve: arguments(directory, ["--drain-timeout", String(drainTimeout)]))
        let client = flowd.client
        let runs = (0..<3).map { index in
            Task { try await client.post("/run", json: #"{"input": "x", "story_id": "drain-\#(index)"}"#) }
        }
        try await waitForRunsInFlight(3, client)
        flowd.signal(SIGTERM)
        // The signal is handled asynchronously: the drain has begun once readiness says so.
        var ready = try await client.get("/readyz")
        try await waitUntil("/readyz to answer 503 after SIGTERM") {
            ready = try await client.get("/readyz")
            return ready.status == 503
        }
        #expect(ready.status == 503)
        #expect(ready.header("Retry-After") != nil)
        let r1 = try await client.get("/healthz")
        #expect(r1.status == 200)
        let late = try await client.post("/run", json: #"{"input": "x", "story_id": "late"}"#)
        #expect(late.status == 503)
        #expect(late.header("Retry-After") != nil)

        for run in runs {
            let response = try await run.value
            #expect(response.status == 200)
            #expect(response.json["result"]?.stringValue == "woke")
        }
        #expect(await flowd.waitForExit() == 0)
    }

    @Test func pastTheDrainTimeoutRunsAreCancelledAndNothingIsWritten() async throws {
        let directory = try slowAgents(delayMilliseconds: 30_000)
        defer { directory.remove() }
        let flowd = try await FlowdProcess.start(serve: arguments(directory, ["--drain-timeout", "1"]))
        let client = flowd.client
        let run = Task { try await client.post("/run", json: #"{"input": "x", "story_id": "cut"}"#) }
        try await waitForRunsInFlight(1, client)
        let signalled = ContinuousClock.now
        flowd.signal(SIGTERM)
        let response = try await run.value
        #expect(response.status == 503)
        #expect(response.header("Retry-After") != nil)
        #expect(await flowd.waitForExit() == 0)
        #expect(ContinuousClock.now - signalled < .seconds(10))

        let restarted = try await FlowdProcess.start(serve: arguments(directory))
        let contexts = try await restarted.client.get("/memory/isolated?prefix=sleeper")
        #expect((contexts.json["entries"]?.arrayValue)?.isEmpty == true)
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
    }

    @Test func killDashNineLosesNoAcknowledgedWrite() async throws {
        let directory = try slowAgents(delayMilliseconds: 10)
        defer { directory.remove() }
        let flowd = try await FlowdProcess.start(serve: arguments(directory))
        let client = flowd.client
        let acknowledged = AcknowledgedWrites()
        let writers = (0..<16).map { writer in
            Task {
                for sequence in 0..<100_000 {
                    let key = "w\(writer)-\(sequence)"
                    guard let response = try? await client.request("PUT", "/memory/shared/\(key)", body: Array(#"{"value": {"writer": \#(writer), "seq": \#(sequence)}}"#.utf8)) else { return }
                    guard response.status == 200 else { return }
                    acknowledged.add(key)
                }
            }
        }
        // Killed mid-stream of writes: once a hundred have been acknowledged.
        try await waitUntil("100 acknowledged writes") { acknowledged.all.count >= 100 }
        flowd.signal(SIGKILL)
        for writer in writers { await writer.value }
        _ = await flowd.waitForExit()
        let keys = acknowledged.all
        #expect(keys.count > 20)

        let restarted = try await FlowdProcess.start(serve: arguments(directory))
        let listed = try await restarted.client.get("/memory/shared?prefix=w")
        let stored = Set((listed.json["entries"]?.elements ?? []).compactMap { $0["key"]?.stringValue })
        let lost = keys.subtracting(stored)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes lost of \(keys.count)")
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
    }
}

extension ProcessTests {
    /// `--on-restart fail` keeps the older behaviour: a run the kill interrupted ends failed.
    @Test func runRecordsSurviveARestartAndAKilledRunReadsFailedWithOnRestartFail() async throws {
        let directory = try slowAgents(delayMilliseconds: 30_000)
        defer { directory.remove() }
        try directory.write("agents/quick.yaml", "kind: template\nprompt: \"quick {{input}}\"\n")
        try directory.write("agents/flows.yaml", "default: [sleeper]\nquick: [quick]\n")
        let flowd = try await FlowdProcess.start(serve: arguments(directory))
        let done = try await flowd.client.post("/run", json: #"{"flow": "quick", "input": "x", "story_id": "kept"}"#)
        let doneID = try #require(done.json["run_id"]?.stringValue)
        let started = try await flowd.client.post("/runs", json: #"{"input": "x", "story_id": "killed"}"#)
        let killedID = try #require(started.json["run_id"]?.stringValue)
        try await Durable.waitForRecord(flowd.client, killedID, ["running"])
        flowd.signal(SIGKILL)
        _ = await flowd.waitForExit()

        let restarted = try await FlowdProcess.start(serve: arguments(directory) + ["--on-restart", "fail"])
        let kept = try await restarted.client.get("/runs/\(doneID)")
        #expect(kept.json["status"]?.stringValue == "succeeded")
        #expect(kept.json["result"]?.stringValue == "quick x")
        let killed = try await restarted.client.get("/runs/\(killedID)")
        #expect(killed.json["status"]?.stringValue == "failed")
        #expect((killed.json["error"]?.stringValue)?.contains("flowd stopped") == true)
        let events = try await restarted.client.get("/runs/\(killedID)/events")
        #expect(events.status == 200)
        #expect(events.text.contains("event: error"))
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
    }

    /// A `/run`'s record rides in its memory line; the run store writes its own copy ~20 ms
    /// later. Killed right after the answers, a restart adopts the copies it lacks.
    @Test func aKillRightAfterTheAnswersLosesNoRunRecord() async throws {
        let directory = try slowAgents(delayMilliseconds: 10)
        defer { directory.remove() }
        try directory.write("agents/quick.yaml", "kind: template\nprompt: \"quick {{input}}\"\n")
        try directory.write("agents/flows.yaml", "default: [sleeper]\nquick: [quick]\n")
        let flowd = try await FlowdProcess.start(serve: arguments(directory))
        var ids: [String: String] = [:]
        for k in 0..<20 {
            let answer = try await flowd.client.post("/run", json: #"{"flow": "quick", "input": "n\#(k)", "story_id": "s\#(k)"}"#)
            #expect(answer.status == 200)
            ids[try #require(answer.json["run_id"]?.stringValue)] = "quick n\(k)"
        }
        flowd.signal(SIGKILL)
        _ = await flowd.waitForExit()

        let restarted = try await FlowdProcess.start(serve: arguments(directory))
        for (id, result) in ids {
            let record = try await restarted.client.get("/runs/\(id)")
            #expect(record.status == 200)
            #expect(record.json["status"]?.stringValue == "succeeded")
            #expect(record.json["result"]?.stringValue == result)
            let events = try await restarted.client.get("/runs/\(id)/events")
            #expect(events.text.contains("event: done"))
        }
        let memory = try await restarted.client.get("/memory/isolated/quick:s19")
        #expect((memory.json["value"])?["status"]?.stringValue == "completed")
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
    }
}

/// Keys whose write was answered 200, from many tasks.
final class AcknowledgedWrites: Sendable {
    private let keys = Locked(Set<String>())

    func add(_ key: String) { _ = keys.withLock { $0.insert(key) } }

    var all: Set<String> { keys.withLock { $0 } }
}
