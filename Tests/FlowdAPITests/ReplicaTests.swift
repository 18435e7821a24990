import FlowdJSON
import FlowdTesting
import Foundation
import Stores
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `--store postgres`: flowd processes on one PostgreSQL database (a throwaway server the
/// tests start, one database per test) behave as one server.
@Suite("replicas on PostgreSQL", .serialized, .enabled(if: PostgresServer.unavailableReason == nil, "PostgreSQL is not installed"))
struct ReplicaTests {
    /// Agents: `sleeper` waits `delay` ms and answers `<input>|<its last output>`, so a
    /// story's chain of results shows the order its runs ran in; `slow` waits 30 s.
    private func agents(delay: Int = 200) throws -> TempDirectory {
        let directory = try TempDirectory()
        try directory.write("agents/sleeper.yaml", "kind: mock\ndelay_ms: \(delay)\nprompt: \"{{input}}|{{memory.last_output}}\"\n")
        try directory.write("agents/slow.yaml", "kind: mock\ndelay_ms: 30000\noutput: \"slow done\"\n")
        try directory.write("agents/reader.yaml", "kind: template\nprompt: \"read {{docs.brief}}\"\n")
        try directory.write("agents/step.yaml", "kind: mock\ndelay_ms: 300\noutput: \"stepped\"\n")
        try directory.write("agents/flows.yaml", "default: [sleeper]\nslow: [slow]\nreader: [reader]\nsteps: [step, sleeper]\n")
        return directory
    }

    private func database() async throws -> String {
        try await PostgresServer.shared().makeDatabase()
    }

    private func replica(_ directory: TempDirectory, _ url: String, _ extra: [String] = []) async throws -> FlowdProcess {
        try await FlowdProcess.start(serve: ["--agents", directory.path("agents").path, "--store", "postgres",
                                             "--database-url", url, "--lease-ttl", "3"] + extra)
    }

    private func waitForStatus(_ client: any TestClient, _ runID: String, _ wanted: Set<String>,
                               timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let deadline = ContinuousClock.now + scaled(timeout)
        while true {
            let record = try await client.get("/runs/\(runID)").json
            if let status = record["status"]?.stringValue, wanted.contains(status) { return record }
            guard ContinuousClock.now < deadline else { throw TestClientError("run \(runID) still \(record)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func anUnreachableDatabaseAtStartIsAClearErrorAndExitStatus2() async throws {
        let directory = try agents()
        defer { directory.remove() }
        let process = Process()
        process.executableURL = FlowdProcess.executable
        process.arguments = ["serve", "--port", "0", "--agents", directory.path("agents").path, "--store", "postgres",
                             "--database-url", "postgres://flowd@127.0.0.1:1/nowhere"]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 2)
        #expect(text.contains("cannot use the database postgres://flowd@127.0.0.1:1/nowhere"), "\(text)")
        #expect(!text.contains("password"))
    }

    @Test func oneReplicaServesRunsMemoryDocumentsAndRecords() async throws {
        let directory = try agents(delay: 10)
        defer { directory.remove() }
        let flowd = try await replica(directory, try await database())
        let client = flowd.client
        let first = try await client.post("/run", json: #"{"input": "one", "story_id": "s"}"#)
        #expect(first.status == 200)
        #expect(first.json["result"]?.stringValue == "one|")
        let second = try await client.post("/run", json: #"{"input": "two", "story_id": "s"}"#)
        #expect(second.json["result"]?.stringValue == "two|one|")
        let context = try await client.get("/memory/isolated/sleeper:s")
        #expect((context.json["value"])?["last_output"]?.stringValue == "two|one|")

        let pending = try await client.post("/run", json: #"{"flow": "reader", "input": "x", "story_id": "d"}"#)
        #expect(pending.json["pending_docs"]?.strings == ["brief"])
        #expect(try await client.put("/docs/brief", body: "the brief").status == 201)
        let read = try await client.post("/run", json: #"{"flow": "reader", "input": "x", "story_id": "d"}"#)
        #expect(read.json["result"]?.stringValue == "read the brief")

        let runID = try #require(second.json["run_id"]?.stringValue)
        let record = try await client.get("/runs/\(runID)")
        #expect(record.json["status"]?.stringValue == "succeeded")
        let events = try await client.get("/runs/\(runID)/events")
        #expect(events.text.contains("event: done"))
        #expect(try await client.get("/runs/\(runID)/events", headers: [("Last-Event-ID", "99")]).status == 204)
        #expect(try await client.get("/readyz").status == 200)
        flowd.signal(SIGTERM)
        #expect(await flowd.waitForExit() == 0)
    }

    @Test func aStorysRunsSentAlternatelyToTwoReplicasRunOneAtATimeInArrivalOrder() async throws {
        let directory = try agents(delay: 150)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url)
        let b = try await replica(directory, url)
        var ids: [String] = []
        for k in 0..<8 {
            let client = k % 2 == 0 ? a.client : b.client
            let started = try await client.post("/runs", json: #"{"input": "r\#(k)", "story_id": "chain"}"#)
            #expect(started.status == 202)
            ids.append(try #require(started.json["run_id"]?.stringValue))
        }
        // Another story meanwhile is not held up by this one.
        let other = try await b.client.post("/run", json: #"{"input": "x", "story_id": "other"}"#)
        #expect(other.json["result"]?.stringValue == "x|")
        let otherRecord = try await a.client.get("/runs/\(try #require(other.json["run_id"]?.stringValue))").json
        #expect(otherRecord["status"]?.stringValue == "succeeded")
        #expect(try await a.client.get("/runs/\(ids[7])").json["status"]?.stringValue != "succeeded")

        var expected = ""
        var previousEnd = ""
        for (k, id) in ids.enumerated() {
            let record = try await waitForStatus(k % 2 == 0 ? b.client : a.client, id, ["succeeded", "failed", "cancelled"])
            expected = "r\(k)|" + expected
            #expect(record["result"]?.stringValue == expected, "run \(k)")
            // Each one started after the one before it ended (records keep milliseconds).
            let created = record["created_at"]?.stringValue ?? ""
            let finished = record["finished_at"]?.stringValue ?? ""
            #expect(previousEnd <= finished && created <= finished)
            previousEnd = finished
        }
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        #expect(await a.waitForExit() == 0)
        #expect(await b.waitForExit() == 0)
    }

    @Test func aStorysRunsSentAtOnceToTwoReplicasStillRunOneAtATime() async throws {
        let directory = try agents(delay: 20)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url)
        let b = try await replica(directory, url)
        let clients = [a.client, b.client]
        let results = try await withThrowingTaskGroup(of: String.self) { group in
            for k in 0..<16 {
                group.addTask {
                    let response = try await clients[k % 2].post("/run", json: #"{"input": "r\#(k)", "story_id": "burst"}"#)
                    return response.json["result"]?.stringValue ?? "status \(response.status)"
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        // Each run saw the output of exactly one other (or none, the first): one chain, no two
        // runs interleaved (two overlapping runs would have seen the same output).
        let suffixes = results.map { String($0.drop(while: { $0 != "|" }).dropFirst()) }
        #expect(Set(results).count == 16, "\(results)")
        #expect(suffixes.filter(\.isEmpty).count == 1, "\(results)")
        #expect(Set(suffixes.filter { !$0.isEmpty }) == Set(results).subtracting([results.max { $0.count < $1.count }!]), "\(results)")
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        _ = await a.waitForExit()
        _ = await b.waitForExit()
    }

    /// The race of a story's order on the database, many times over: 24 stories of 12 runs,
    /// all sent at once to two replicas. A plain `/run` arrives without waiting for the disk and
    /// only reads its turn; a `POST /runs` (every third run) arrives durably and stores its turn.
    /// Each story must still be one chain: every run saw the output of exactly one other.
    @Test func manyStoriesBurstAcrossTwoReplicasEachRunOneAtATime() async throws {
        let directory = try agents(delay: 5)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url)
        let b = try await replica(directory, url)
        let clients = [a.client, b.client]
        let (stories, runsPerStory) = (24, 12)
        let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for story in 0..<stories {
                for k in 0..<runsPerStory {
                    group.addTask {
                        let client = clients[(story + k) % 2]
                        let body = #"{"input": "r\#(k)", "story_id": "story-\#(story)"}"#
                        guard k % 3 == 0 else {
                            let response = try await client.post("/run", json: body)
                            return (story, response.json["result"]?.stringValue ?? "status \(response.status)")
                        }
                        let started = try await client.post("/runs", json: body)
                        let id = try #require(started.json["run_id"]?.stringValue, "status \(started.status)")
                        let record = try await waitForStatus(clients[(story + k + 1) % 2], id, ["succeeded", "failed", "cancelled"])
                        return (story, record["result"]?.stringValue ?? "status \(record["status"] ?? "")")
                    }
                }
            }
            return try await group.reduce(into: [Int: [String]]()) { $0[$1.0, default: []].append($1.1) }
        }
        for story in 0..<stories {
            let chain = results[story] ?? []
            let suffixes = chain.map { String($0.drop(while: { $0 != "|" }).dropFirst()) }
            #expect(Set(chain).count == runsPerStory, "story \(story): \(chain)")
            #expect(suffixes.filter(\.isEmpty).count == 1, "story \(story): \(chain)")
            let last = chain.max { $0.count < $1.count } ?? ""
            #expect(Set(suffixes.filter { !$0.isEmpty }) == Set(chain).subtracting([last]), "story \(story): \(chain)")
        }
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        _ = await a.waitForExit()
        _ = await b.waitForExit()
    }

    @Test func memoryAndDocumentsWrittenThroughOneReplicaAreReadThroughTheOther() async throws {
        let directory = try agents(delay: 10)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url)
        let b = try await replica(directory, url)
        #expect(try await a.client.put("/memory/shared/k1", body: #"{"value": {"n": 9007199254740993}}"#).status == 200)
        #expect(try await b.client.get("/memory/shared/k1").text.contains("9007199254740993"))
        #expect(try await b.client.put("/docs/brief", body: "from b").status == 201)
        #expect(try await a.client.get("/docs/brief").text == "from b")
        let run = try await a.client.post("/run", json: #"{"flow": "reader", "input": "x", "story_id": "s"}"#)
        #expect(run.json["result"]?.stringValue == "read from b")
        #expect(try await b.client.delete("/memory/shared/k1").status == 204)
        #expect(try await a.client.get("/memory/shared/k1").status == 404)
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        _ = await a.waitForExit()
        _ = await b.waitForExit()
    }

    @Test func aRunStartedOnOneReplicaIsFollowedAndCancelledThroughTheOther() async throws {
        let directory = try agents(delay: 10)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url)
        let b = try await replica(directory, url)
        let started = try await a.client.post("/runs", json: #"{"flow": "slow", "input": "x", "story_id": "c"}"#)
        let id = try #require(started.json["run_id"]?.stringValue)
        _ = try await waitForStatus(b.client, id, ["running"])

        let stream = try await SSEConnection.open(port: b.port, "GET", "/runs/\(id)/events")
        #expect(stream.head.status == 200)
        let first = try await stream.next()
        #expect(first?.event == "progress" && first?.id == "1")

        let asked = ContinuousClock.now
        let cancel = try await b.client.post("/runs/\(id)/cancel", json: "{}")
        #expect(cancel.status == 202)
        let record = try await waitForStatus(b.client, id, ["cancelled", "failed", "succeeded"], timeout: .seconds(5))
        #expect(record["status"]?.stringValue == "cancelled")
        #expect(ContinuousClock.now - asked < .seconds(2))
        let rest = try await stream.all()
        #expect(rest.map { $0.event ?? "" } == ["cancelled"])
        #expect(try await a.client.get("/memory/isolated/slow:c").status == 404)  // memory untouched
        #expect(try await b.client.post("/runs/\(id)/cancel", json: "{}").status == 202)  // again: nothing changes
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        _ = await a.waitForExit()
        _ = await b.waitForExit()
    }

    @Test func aRunOfOneReplicaIsStreamedLiveThroughTheOtherEveryEventOnceInOrder() async throws {
        let directory = try agents(delay: 300)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url)
        let b = try await replica(directory, url)
        let started = try await a.client.post("/runs", json: #"{"flow": "steps", "input": "x", "story_id": "live"}"#)
        let id = try #require(started.json["run_id"]?.stringValue)
        let stream = try await SSEConnection.open(port: b.port, "GET", "/runs/\(id)/events")
        #expect(stream.head.status == 200)
        #expect(stream.head.header("Transfer-Encoding") == "chunked")  // followed live, not a replay
        let events = try await stream.all()
        #expect(events.map { $0.event ?? "" } == ["progress", "progress", "result", "progress", "progress", "result", "done"])
        #expect(events.map { $0.id ?? "" } == (1...7).map(String.init))
        #expect(events.last?.json["result"]?.stringValue == "x|")
        // Resuming after event 3 on the other replica gives the rest once.
        let resumed = try await b.client.get("/runs/\(id)/events", headers: [("Last-Event-ID", "3")])
        #expect(resumed.text.components(separatedBy: "\nid: ").count == 4)
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        _ = await a.waitForExit()
        _ = await b.waitForExit()
    }

    /// With `--on-restart fail`, the older behaviour (resume, the default, is DurableReplicaTests').
    @Test func aReplicaKilledMidRunLeavesItsRunsFailedOnceItsLeaseExpiresWithOnRestartFail() async throws {
        let directory = try agents(delay: 10)
        defer { directory.remove() }
        let url = try await database()
        let a = try await replica(directory, url, ["--on-restart", "fail"])
        let b = try await replica(directory, url, ["--on-restart", "fail"])
        let running = try #require(try await a.client.post("/runs", json: #"{"flow": "slow", "input": "x", "story_id": "k"}"#).json["run_id"]?.stringValue)
        let queued = try #require(try await a.client.post("/runs", json: #"{"input": "q", "story_id": "k"}"#).json["run_id"]?.stringValue)
        _ = try await waitForStatus(b.client, running, ["running"])
        a.signal(SIGKILL)
        _ = await a.waitForExit()
        let killed = ContinuousClock.now

        let failed = try await waitForStatus(b.client, running, ["failed"], timeout: .seconds(15))
        #expect((failed["error"]?.stringValue)?.contains("lost its lease") == true)
        #expect(ContinuousClock.now - killed < .seconds(3 + 3))  // TTL 3 s, checked every second
        #expect(try await waitForStatus(b.client, queued, ["failed"])["status"]?.stringValue == "failed")
        let events = try await b.client.get("/runs/\(running)/events")
        #expect(events.text.contains("event: error"))
        // The story is free again: a new run goes through.
        let next = try await b.client.post("/run", json: #"{"input": "after", "story_id": "k"}"#)
        #expect(next.json["result"]?.stringValue == "after|")
        b.signal(SIGTERM)
        _ = await b.waitForExit()
    }
}

extension ReplicaTests {
    @Test func theDatabaseRestartedUnderLoadLosesNoAcknowledgedWriteAndBothReplicasRecover() async throws {
        let server = try await PostgresServer.start()  // its own: this test stops it
        defer { server.stop() }
        let url = try await server.makeDatabase()
        let directory = try agents(delay: 20)
        defer { directory.remove() }
        let a = try await replica(directory, url, ["--lease-ttl", "15"])
        let b = try await replica(directory, url, ["--lease-ttl", "15"])
        let clients = [a.client, b.client]
        let acknowledged = AcknowledgedWrites()
        let runsAcknowledged = AcknowledgedWrites()
        let refusals = AcknowledgedWrites()
        let stop = AcknowledgedWrites()
        let writers = (0..<8).map { writer in
            Task {
                var sequence = 0
                while stop.all.isEmpty, !Task.isCancelled {
                    sequence += 1
                    let client = clients[(writer + sequence) % 2]
                    if writer < 6 {
                        let key = "w\(writer)-\(sequence)"
                        let response = try? await client.put("/memory/shared/\(key)", body: #"{"value": \#(sequence)}"#)
                        if response?.status == 200 { acknowledged.add(key) }
                        if response?.status == 503 { refusals.add("\(response?.header("Retry-After") ?? "none")-\(writer)-\(sequence)") }
                    } else {
                        let response = try? await client.post("/run", json: #"{"input": "n\#(sequence)", "story_id": "load-\#(writer)"}"#)
                        if response?.status == 200, let id = response?.json["run_id"]?.stringValue { runsAcknowledged.add(id) }
                        if response?.status == 503 { refusals.add("\(response?.header("Retry-After") ?? "none")-\(writer)-\(sequence)") }
                    }
                    try? await Task.sleep(for: .milliseconds(5))  // pacing of the load, not a synchronisation
                }
            }
        }
        defer {
            stop.add("stop")
            for writer in writers { writer.cancel() }
        }
        // The outage comes once the load is under way, on both replicas.
        try await waitUntil("writes and runs acknowledged before the outage") {
            acknowledged.all.count > 20 && !runsAcknowledged.all.isEmpty
        }
        let before = acknowledged.all.count
        try await server.pause()
        // Both notice within a few seconds: not ready, new runs refused with Retry-After.
        for client in clients {
            let deadline = ContinuousClock.now + .seconds(10)
            while try await client.get("/readyz").status != 503, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let ready = try await client.get("/readyz")
            #expect(ready.status == 503 && ready.header("Retry-After") != nil)
            let refused = try await client.post("/run", json: #"{"input": "x", "story_id": "refused"}"#)
            #expect(refused.status == 503 && refused.header("Retry-After") != nil)
            #expect(try await client.get("/healthz").status == 200)
        }
        try await server.restart()
        let restarted = ContinuousClock.now
        for client in clients {
            let deadline = ContinuousClock.now + .seconds(30)
            while try await client.get("/readyz").status != 200, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await client.get("/readyz").status == 200)
        }
        let recovery = ContinuousClock.now - restarted
        let atRecovery = acknowledged.all.count
        try await waitUntil("writes acknowledged after the restart") { acknowledged.all.count > atRecovery }
        stop.add("stop")
        for writer in writers { await writer.value }
        #expect(acknowledged.all.count > before, "writes resumed after the restart")
        #expect(before > 10)
        // Writers that met the outage were refused with Retry-After (whether any did depends on
        // timing: a request waiting for a connection when the database came back succeeds).
        #expect(refusals.all.allSatisfy { !$0.hasPrefix("none-") }, "\(refusals.all)")

        // Every acknowledged write and run is there, read through either replica.
        let listed = try await b.client.get("/memory/shared?prefix=w")
        let stored = Set((listed.json["entries"]?.elements ?? []).compactMap { $0["key"]?.stringValue })
        let lost = acknowledged.all.subtracting(stored)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes lost of \(acknowledged.all.count)")
        for id in runsAcknowledged.all {
            #expect(try await a.client.get("/runs/\(id)").json["status"]?.stringValue == "succeeded")
        }
        for client in clients {
            let after = try await client.post("/run", json: #"{"input": "after", "story_id": "fresh"}"#)
            #expect(after.status == 200)
        }
        print("database restart: recovered in \(recovery); \(acknowledged.all.count) writes and \(runsAcknowledged.all.count) runs acknowledged, \(refusals.all.count) refused with 503")
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        let exitA = await a.waitForExit()
        let exitB = await b.waitForExit()
        #expect(exitA == 0, "replica a's log:\n\(a.log)")
        #expect(exitB == 0, "replica b's log:\n\(b.log)")
    }
}
