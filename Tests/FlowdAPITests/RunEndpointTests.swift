import FlowdTesting
import Foundation
import Stores
import Testing

@Suite("POST /run")
struct RunEndpointTests {
    @Test func theDefaultFlowRunsAndAnswersTheLastAgentsOutput() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.run(#"{"input": "hello", "story_id": "s1"}"#)
            #expect(response.status == 200)
            #expect(response.json["result"]?.stringValue == "summary of analysis of hello (before: )")
            #expect(response.json["pending_docs"] == .null)
            #expect((response.json["run_id"]?.stringValue)?.isEmpty == false)
            let contexts = try await flowd.contexts(story: "s1")
            #expect(contexts["analyst:s1"]?["status"] == "completed")
            #expect(contexts["analyst:s1"]?["last_output"] == "analysis of hello (before: )")
            #expect(contexts["summarizer:s1"]?["story_id"] == "s1")
            #expect(contexts["summarizer:s1"]?["agent_id"] == "summarizer")
        }
    }

    @Test func missingDocumentsArePendingInFlowOrderThenTheRunCompletes() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let pending = try await flowd.run(#"{"flow": "docs", "input": "x", "story_id": "s2"}"#)
            #expect(pending.status == 200)
            #expect(pending.json["result"] == .null)
            #expect(pending.json["pending_docs"]?.strings == ["brief", "prd", "arch"])
            #expect(pending.json["run_id"]?.stringValue != nil)
            let r1 = try await flowd.contexts(story: "s2")
            #expect(r1.isEmpty)

            let r2 = try await flowd.client.put("/docs/brief", body: "# Brief")

            #expect(r2.status == 201)
            let stillPending = try await flowd.run(#"{"flow": "docs", "input": "x", "story_id": "s2"}"#)
            #expect(stillPending.json["pending_docs"]?.strings == ["prd", "arch"])

            let r3 = try await flowd.client.put("/docs/prd", body: "# PRD")

            #expect(r3.status == 201)
            let r4 = try await flowd.client.put("/docs/arch", body: "# Arch")
            #expect(r4.status == 201)
            let done = try await flowd.run(#"{"flow": "docs", "input": "x", "story_id": "s2"}"#)
            #expect(done.status == 200)
            #expect(done.json["result"]?.stringValue == "architecture from # Arch")
            #expect(done.json["pending_docs"] == .null)
        }
    }

    @Test func aFailingAgentIs500WithoutResultsAndLeavesMemoryUntouched() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.run(#"{"flow": "failing", "input": "x", "story_id": "s3"}"#)
            #expect(response.status == 500)
            #expect(response.json["detail"]?.stringValue == "Flow execution failed: boom: boom")
            #expect(response.json["result"] == nil)
            let r5 = try await flowd.contexts(story: "s3")
            #expect(r5.isEmpty)
        }
    }

    @Test func retriesThatRecoverSucceed() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.run(#"{"flow": "flaky", "input": "x", "story_id": "s4"}"#)
            #expect(response.status == 200)
            #expect(response.json["result"]?.stringValue == "recovered")
        }
    }

    @Test func routesPickTheNextAgentAndALoopPastMaxStepsFails() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let approved = try await flowd.run(#"{"flow": "review", "input": "ok then", "story_id": "s5"}"#)
            #expect(approved.status == 200)
            #expect(approved.json["result"]?.stringValue == "ok then")
            let looping = try await flowd.run(#"{"flow": "review", "input": "never", "story_id": "s6"}"#)
            #expect(looping.status == 500)
            // writer, reviewer, writer, reviewer, writer: the sixth step would be the reviewer.
            #expect(looping.json["detail"]?.stringValue == "Flow execution failed: reviewer: max_steps (5) exceeded")
            let r6 = try await flowd.contexts(story: "s6")
            #expect(r6.isEmpty)
        }
    }

    @Test func memoryIsIsolatedPerStoryAndASecondRunSeesTheFirst() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            _ = try await flowd.run(#"{"input": "one", "story_id": "story-a"}"#)
            let second = try await flowd.run(#"{"input": "two", "story_id": "story-a"}"#)
            #expect(second.json["result"]?.stringValue == "summary of analysis of two (before: analysis of one (before: ))")
            let other = try await flowd.run(#"{"input": "three", "story_id": "story-b"}"#)
            #expect(other.json["result"]?.stringValue == "summary of analysis of three (before: )")
        }
    }

    @Test func runsOfOneStoryDoNotOverlapAndKeepArrivalOrder() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let started = ContinuousClock.now
            let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for index in 0..<3 {
                    group.addTask {
                        let response = try await flowd.run(#"{"flow": "sleepy", "input": "r\#(index)", "story_id": "same"}"#)
                        return (index, response.json["result"]?.stringValue ?? "")
                    }
                    // Arrival order r0, r1, r2: the next is sent once this one is admitted.
                    try await waitUntil("run r\(index) admitted") { flowd.app.runs.runsInFlight > index }
                }
                return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
            }
            #expect(ContinuousClock.now - started >= .milliseconds(900))
            #expect(results[0] == "r0|")
            #expect(results[1] == "r1|r0|")
            #expect(results[2] == "r2|r1|r0|")
        }
    }

    @Test func tooManyRunsInFlightAre503WithRetryAfter() async throws {
        try await withFlowd(Fixtures.basic, mode: .router, configure: { $0.maxRuns = 2 }) { flowd in
            let slow = (0..<2).map { index in Task { try await flowd.run(#"{"flow": "slow", "input": "x", "story_id": "busy-\#(index)"}"#) } }
            try await waitUntil("two runs in flight") { flowd.app.runs.runsInFlight == 2 }
            let rejected = try await flowd.run(#"{"flow": "slow", "input": "x", "story_id": "busy-3"}"#)
            #expect(rejected.status == 503)
            #expect(rejected.header("Retry-After") != nil)
            for task in slow {
                let response = try await task.value
                #expect(response.status == 200)
            }
        }
    }

    @Test(arguments: [
        ("{not json", 400),
        ("[1, 2]", 400),
        ("\"text\"", 400),
        ("", 400),
        (#"{"flow": "nope", "input": "x", "story_id": "s"}"#, 400),
        (#"{"story_id": "s"}"#, 422),
        (#"{"input": "x"}"#, 422),
        (#"{"input": 5, "story_id": "s"}"#, 422),
        (#"{"input": "x", "story_id": 7}"#, 422),
        (#"{"input": "x", "story_id": "bad id"}"#, 422),
        (#"{"input": "x", "story_id": "-starts-with-dash"}"#, 422),
        (#"{"flow": 3, "input": "x", "story_id": "s"}"#, 422),
        // The fields are checked before the flow is looked up, as in the original service.
        (#"{"flow": "nope", "input": "x", "story_id": "bad id"}"#, 422),
        (#"{"flow": "nope", "story_id": "s"}"#, 422),
    ])
    func badBodiesGetTheDocumentedStatus(body: String, status: Int) async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.run(body)
            #expect(response.status == status)
            if status == 422 {
                let detail = response.json["detail"]?.elements ?? []
                #expect(!detail.isEmpty)
                #expect(detail.allSatisfy { ($0["loc"]?.strings)?.first == "body" && $0["msg"]?.stringValue != nil && $0["type"]?.stringValue != nil })
            } else {
                #expect(response.json["detail"]?.stringValue != nil)
            }
            if body.contains("nope"), status == 400 {
                // The 400 names the flow asked for and the flows there are.
                let detail = response.json["detail"]?.stringValue ?? ""
                #expect(detail.contains("nope") && detail.contains("default") && detail.contains("review"), "\(detail)")
            }
        }
    }

    @Test func inputLongerThanTheLimitIs422() async throws {
        try await withFlowd(Fixtures.basic, mode: .router, configure: { $0.maxInput = 10 }) { flowd in
            let ok = try await flowd.run(#"{"input": "éééééééééé", "story_id": "s"}"#)
            #expect(ok.status == 200)
            let long = try await flowd.run(#"{"input": "ééééééééééé", "story_id": "s"}"#)
            #expect(long.status == 422)
            let detail = (long.json["detail"]?.arrayValue)?.first
            #expect(detail?["loc"]?.strings == ["body", "input"])
            #expect(detail?["type"]?.stringValue == "string_too_long")
        }
    }

    @Test func contentTypesAndSizesFollowThePrecedenceRules() async throws {
        try await withFlowd(Fixtures.basic, mode: .router, configure: { $0.maxBody = 200 }) { flowd in
            let body = #"{"input": "x", "story_id": "s"}"#
            for type in ["application/json; charset=utf-8", "application/vnd.api+json", "APPLICATION/JSON"] {
                let response = try await flowd.client.request("POST", "/run", headers: [("Content-Type", type)], body: Array(body.utf8))
                #expect(response.status == 200, "\(type)")
            }
            let none = try await flowd.client.request("POST", "/run", body: Array(body.utf8))
            #expect(none.status == 200)
            let text = try await flowd.client.request("POST", "/run", headers: [("Content-Type", "text/plain")], body: Array("{not json".utf8))
            #expect(text.status == 415)
            let huge = try await flowd.client.request("POST", "/run", headers: [("Content-Type", "text/plain")], body: Array(repeating: 0x41, count: 201))
            #expect(huge.status == 413)
            let wrongMethod = try await flowd.client.get("/run")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow") == "POST")
        }
    }

    @Test func flowsAreListedWithAgentsAndDocumentsInFlowOrder() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.client.get("/flows")
            let flows = response.json["flows"]?.elements ?? []
            let docs = flows.first { $0["name"]?.stringValue == "docs" }
            #expect(docs?["agents"]?.strings == ["reader", "architect"])
            #expect(docs?["requires"]?.strings == ["brief", "prd", "arch"])
            let review = flows.first { $0["name"]?.stringValue == "review" }
            #expect(review?["agents"]?.strings == ["writer", "reviewer"])
        }
    }
}
