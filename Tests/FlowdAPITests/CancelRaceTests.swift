import FlowdTesting
import Foundation
import Stores
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A cancel answered 202 ends the run `cancelled` with its memory untouched; one that came
/// too late is 409 and the run succeeded with its memory written. Raced many times against a
/// template-only flow, whose commit is where a run spends its time, on both backends.
enum CancelRace {
    static let agents = TestAgents(
        agents: ["analyst": "kind: template\nprompt: \"analysis of {{input}}\"\n",
                 "summarizer": "kind: template\nprompt: \"summary of {{outputs.analyst}}\"\n"],
        flows: "default: [analyst, summarizer]\n")

    struct Tally: CustomStringConvertible {
        var accepted = 0
        var tooLate = 0
        var description: String { "\(accepted) cancels won (202), \(tooLate) came too late (409)" }
    }

    /// Per round: `POST /runs` to `startPort`, and at once `POST /runs/{id}/cancel` to
    /// `cancelPort`; with `queued`, a second run of the same story first, cancelled too, so
    /// one of the two waits behind the other. Then every run's end is checked against its
    /// cancel's answer.
    static func race(rounds: Int, startPort: Int, cancelPort: Int, prefix: String, queued: Bool = false) async throws -> Tally {
        try await TestHTTPClient.blocking {
            let starter = try TestConnection(port: startPort)
            let canceller = cancelPort == startPort ? starter : try TestConnection(port: cancelPort)
            var answers: [(runID: String, story: String, status: Int)] = []
            for round in 0..<rounds {
                let story = "\(prefix)-\(round)"
                var ids: [String] = []
                for input in queued ? ["first", "second"] : ["only"] {
                    let body = Array(#"{"input": "\#(input)", "story_id": "\#(story)"}"#.utf8)
                    try starter.send(keepAlive("POST", "/runs", headers: [("Content-Type", "application/json")], body: body))
                    let started = try starter.readResponse()
                    guard started.status == 202, let id = started.json["run_id"]?.stringValue else {
                        throw TestClientError("POST /runs: \(started.status) \(started.text)")
                    }
                    ids.append(id)
                }
                for id in ids.reversed() {
                    try canceller.send(keepAlive("POST", "/runs/\(id)/cancel", headers: [], body: nil))
                    answers.append((id, story, try canceller.readResponse().status))
                }
            }
            var tally = Tally()
            let checker = try TestConnection(port: startPort)
            func get(_ path: String) throws -> TestResponse {
                try checker.send(keepAlive("GET", path, headers: [], body: nil))
                return try checker.readResponse()
            }
            for (runID, story, status) in answers {
                // The event stream ends with the run: waiting on it waits for the end.
                let events = try get("/runs/\(runID)/events").text
                let record = try get("/runs/\(runID)").json
                let memory = try get("/memory/isolated/analyst:\(story)").status
                switch status {
                case 202:
                    tally.accepted += 1
                    guard record["status"]?.stringValue == "cancelled", events.contains("event: cancelled"),
                          !events.contains("event: done") else {
                        throw TestClientError("cancel of \(runID) answered 202, yet the run ended \(record); events: \(events)")
                    }
                    // Written only by a run of the story that was not cancelled.
                    if !queued, memory != 404 { throw TestClientError("cancelled run \(runID) wrote its memory") }
                case 409:
                    tally.tooLate += 1
                    guard record["status"]?.stringValue == "succeeded", events.contains("event: done"), memory == 200 else {
                        throw TestClientError("cancel of \(runID) answered 409, yet the run ended \(record), memory \(memory)")
                    }
                default:
                    throw TestClientError("cancel of \(runID) answered \(status)")
                }
            }
            if queued {
                // A story whose two cancels both won has no memory; otherwise the survivor wrote it.
                for story in Set(answers.map(\.story)) {
                    let won = answers.filter { $0.story == story && $0.status == 202 }.count
                    let memory = try get("/memory/isolated/analyst:\(story)").status
                    if (won == 2) != (memory == 404) { throw TestClientError("story \(story): \(won) cancels won, memory \(memory)") }
                }
            }
            return tally
        }
    }
}

/// A request for a connection that stays open (`TestHTTPClient.encode` closes it).
private func keepAlive(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) -> [UInt8] {
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    head += "Content-Length: \(body?.count ?? 0)\r\n\r\n"
    return Array(head.utf8) + (body ?? [])
}

@Suite("a cancel against the commit, JSONL")
struct CancelRaceTests {
    @Test func aCancelAnswered202AlwaysEndsTheRunCancelledWithMemoryUntouched() async throws {
        try await withFlowd(CancelRace.agents) { flowd in
            let port = flowd.server.port
            let tally = try await CancelRace.race(rounds: 1000, startPort: port, cancelPort: port, prefix: "race")
            print("JSONL, 1000 races: \(tally)")
            #expect(tally.accepted + tally.tooLate == 1000)
        }
    }

    @Test func aQueuedRunsCancelAnswered202AlsoHolds() async throws {
        try await withFlowd(CancelRace.agents) { flowd in
            let port = flowd.server.port
            let tally = try await CancelRace.race(rounds: 500, startPort: port, cancelPort: port, prefix: "queued", queued: true)
            print("JSONL, 500 stories of two runs: \(tally)")
            #expect(tally.accepted + tally.tooLate == 1000)
        }
    }
}

@Suite("a cancel against the commit, PostgreSQL", .serialized,
       .enabled(if: PostgresServer.unavailableReason == nil, "PostgreSQL is not installed"))
struct PostgresCancelRaceTests {
    private func replicas(_ count: Int) async throws -> ([FlowdProcess], TempDirectory) {
        let directory = try TempDirectory()
        try CancelRace.agents.write(into: directory)
        let url = try await PostgresServer.shared().makeDatabase()
        var processes: [FlowdProcess] = []
        for _ in 0..<count {
            processes.append(try await FlowdProcess.start(serve: ["--agents", directory.path("agents").path, "--store", "postgres",
                                                                 "--database-url", url]))
        }
        return (processes, directory)
    }

    @Test func aCancelAnswered202AlwaysEndsTheRunCancelledOnTheSameReplicaAndAcross() async throws {
        let (replicas, directory) = try await replicas(2)
        defer { directory.remove() }
        let (a, b) = (replicas[0], replicas[1])
        let same = try await CancelRace.race(rounds: 1000, startPort: a.port, cancelPort: a.port, prefix: "same")
        print("PostgreSQL, 1000 races on one replica: \(same)")
        // Across replicas the cancel is decided by the database (the run's row), not the owner.
        let across = try await CancelRace.race(rounds: 1000, startPort: a.port, cancelPort: b.port, prefix: "across")
        print("PostgreSQL, 1000 races across two replicas: \(across)")
        let queued = try await CancelRace.race(rounds: 250, startPort: a.port, cancelPort: b.port, prefix: "queued", queued: true)
        print("PostgreSQL, 250 stories of two runs across two replicas: \(queued)")
        #expect(same.accepted + same.tooLate == 1000)
        #expect(across.accepted + across.tooLate == 1000)
        for replica in replicas { replica.signal(SIGTERM) }
        for replica in replicas { #expect(await replica.waitForExit() == 0) }
    }
}
