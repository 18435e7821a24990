import FlowdTesting
import Foundation
import Stores
import Testing

/// `POST /run`'s concurrency, timed. Wall-clock bounds mean something only without the
/// rest of the suite competing for the same 2 cores and the same cooperative pool (there,
/// 1 s runs were seen to take up to 3 s), so `scripts/test` runs this suite in a `swift
/// test` of its own, and its tests one at a time.
@Suite("POST /run, timed (alone)", .serialized)
struct RunTimingTests {
    @Test func runsOfDifferentStoriesRunConcurrently() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let started = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<8 {
                    group.addTask { try await flowd.run(#"{"flow": "sleepy", "input": "x", "story_id": "story-\#(index)"}"#).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 8))
            // One after another they would take 8 × 300 ms = 2.4 s.
            #expect(ContinuousClock.now - started < scaled(.milliseconds(1500)))
        }
    }

    @Test func twoHundredSlowRunsFinishInAboutASecondWhileHealthzAnswersAtOnce() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let started = ContinuousClock.now
            let runs = Task {
                try await withThrowingTaskGroup(of: TestResponse.self) { group in
                    for index in 0..<200 {
                        group.addTask { try await flowd.run(#"{"flow": "slow", "input": "x", "story_id": "slow-\#(index)"}"#) }
                    }
                    return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
                }
            }
            while flowd.app.runs.runsInFlight < 200, ContinuousClock.now - started < .seconds(5) {
                try await Task.sleep(for: .milliseconds(5))
            }
            let probeStarted = ContinuousClock.now
            let health = try await flowd.client.get("/healthz")
            #expect(health.status == 200)
            #expect(ContinuousClock.now - probeStarted < scaled(.milliseconds(100)))
            let responses = try await runs.value
            #expect(responses.map(\.status) == Array(repeating: 200, count: 200))
            // Each run took about its agent's second from admission to its end: none waited
            // for another. (Measured by the server, as the test client's 200 connections may
            // take a while to open.) One after another would be 200 s.
            let bound = scaled(.milliseconds(1500))
            let boundSeconds = Double(bound.components.seconds) + Double(bound.components.attoseconds) / 1e18
            for response in responses {
                let id = try #require(response.json["run_id"]?.stringValue)
                let record = try #require(try await flowd.app.backend.record(id))
                let took = try #require(record.finishedAt).timeIntervalSince(record.createdAt)
                #expect(took >= 0.99 && took < boundSeconds, "run \(id) took \(took) s")
            }
            #expect(ContinuousClock.now - started < scaled(.milliseconds(3000)))
        }
    }
}
