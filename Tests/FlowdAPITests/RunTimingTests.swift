import FlowdTesting
import Foundation
import Stores
import Testing

/// `POST /run`'s concurrency, as behaviour: runs of different stories do not wait for each
/// other. The bounds tell "concurrent" from "one after another" (which would take many
/// times longer) and hold on a loaded machine, beside the rest of the suite; how fast the
/// server is belongs to `scripts/bench` (`slow`: 5,000 concurrent runs of a 1 s agent,
/// their p50 and p99; `trivial`: the probe alone), not here.
@Suite("POST /run, concurrency", .serialized)
struct RunTimingTests {
    @Test func runsOfDifferentStoriesRunConcurrently() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for index in 0..<8 {
                    group.addTask { try await flowd.run(#"{"flow": "sleepy", "input": "x", "story_id": "story-\#(index)"}"#) }
                }
                return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
            }
            #expect(responses.map(\.status) == Array(repeating: 200, count: 8))
            // All eight were in flight at once, each in its own story's turn: the last one
            // admitted arrived before the first one ended (one after another, 8 × 300 ms).
            var runs: [RunRecord] = []
            for response in responses {
                let id = try #require(response.json["run_id"]?.stringValue)
                runs.append(try #require(try await flowd.app.backend.record(id)))
            }
            let lastArrival = try #require(runs.map(\.createdAt).max())
            let firstEnd = try #require(runs.compactMap(\.finishedAt).min())
            #expect(lastArrival < firstEnd, "the runs did not overlap")
        }
    }

    @Test func twoHundredSlowRunsFinishInAboutASecondWhileHealthzAnswersAtOnce() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let runs = Task {
                try await withThrowingTaskGroup(of: TestResponse.self) { group in
                    for index in 0..<200 {
                        group.addTask { try await flowd.run(#"{"flow": "slow", "input": "x", "story_id": "slow-\#(index)"}"#) }
                    }
                    return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
                }
            }
            try await waitUntil("200 runs in flight") { flowd.app.runs.runsInFlight == 200 }
            // The probe is answered while the runs go on: it does not wait for any of them.
            let health = try await flowd.client.get("/healthz")
            #expect(health.status == 200)
            #expect(flowd.app.runs.runsInFlight > 0, "the probe was answered only after the runs ended")
            let responses = try await runs.value
            #expect(responses.map(\.status) == Array(repeating: 200, count: 200))
            // Each run took at least its agent's second from admission to its end, and far less
            // than waiting for others would take: one after another would be 200 s, ten at a
            // time 20 s. (Measured by the server, as the test client's 200 connections may take
            // a while to open; the whole suite beside it with two busy loops stretched runs to
            // over 2 s, so the bound is no measure of speed: `scripts/bench slow` is.)
            let bound = scaled(.seconds(15))
            let boundSeconds = Double(bound.components.seconds) + Double(bound.components.attoseconds) / 1e18
            for response in responses {
                let id = try #require(response.json["run_id"]?.stringValue)
                let record = try #require(try await flowd.app.backend.record(id))
                let took = try #require(record.finishedAt).timeIntervalSince(record.createdAt)
                #expect(took >= 0.99 && took < boundSeconds, "run \(id) took \(took) s")
            }
        }
    }
}
