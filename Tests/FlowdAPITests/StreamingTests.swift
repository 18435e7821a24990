import FlowdTesting
import Foundation
import Stores
import Testing

@Suite("Progress streams, background runs, cancellation")
struct StreamingTests {
    private func names(_ events: [SSEEvent]) -> [String] {
        events.map { event in
            let object = event.json
            if event.event == "progress" { return "progress \(object["agent"]?.stringValue ?? "?") \(object["status"]?.stringValue ?? "?")" }
            if event.event == "result" { return "result \(object["agent"]?.stringValue ?? "?")" }
            return event.event ?? "message"
        }
    }

    private func checkNumberingAndRunID(_ events: [SSEEvent], runID: String?) {
        #expect(events.map(\.id) == (1...max(events.count, 1)).prefix(events.count).map { String($0) })
        let ids = Set(events.compactMap { $0.json["run_id"]?.stringValue })
        #expect(ids.count == 1)
        if let runID { #expect(ids == [runID]) }
        let terminal = events.filter { ["done", "error", "cancelled"].contains($0.event ?? "") }
        #expect(terminal.count == 1)
        #expect(terminal.first?.id == events.last?.id)
    }

    @Test func aSuccessfulRunStreamsProgressResultsAndOneDone() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run", body: #"{"input": "hi", "story_id": "sse-1"}"#)
            #expect(stream.head.status == 200)
            #expect(stream.head.header("Content-Type") == "text/event-stream")
            let events = try await stream.all()
            #expect(names(events) == [
                "progress analyst started", "progress analyst completed", "result analyst",
                "progress summarizer started", "progress summarizer completed", "result summarizer", "done",
            ])
            checkNumberingAndRunID(events, runID: nil)
            #expect(events[1].json["duration"]?.doubleValue != nil || events[1].json["duration"]?.intValue != nil)
            #expect(events[0].json["timestamp"]?.stringValue != nil)
            #expect(events[2].json["data"]?.stringValue == "analysis of hi (before: )")
            let done = events.last!.json
            #expect(done["result"]?.stringValue == "summary of analysis of hi (before: )")
            #expect(done["pending_docs"] == .null)
            #expect(done["run_id"]?.stringValue == events[0].json["run_id"]?.stringValue)
        }
    }

    @Test func aFailureStreamsTheFailedAgentAndOneError() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run", body: #"{"flow": "failing", "input": "x", "story_id": "sse-2"}"#)
            let events = try await stream.all()
            #expect(names(events) == [
                "progress analyst started", "progress analyst completed", "result analyst",
                "progress boom started", "progress boom failed", "error",
            ])
            checkNumberingAndRunID(events, runID: nil)
            #expect(events.last?.json["status"]?.int == 500)
            #expect(events.last?.json["detail"]?.stringValue == "Flow execution failed: boom: boom")
        }
    }

    @Test func pendingDocumentsEndTheStreamWithDone() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run", body: #"{"flow": "docs", "input": "x", "story_id": "sse-3"}"#)
            let events = try await stream.all()
            #expect(names(events) == ["done"])
            #expect(events.first?.json["pending_docs"]?.strings == ["brief", "prd", "arch"])
            #expect(events.first?.json["result"] == .null)
        }
    }

    @Test func answersDecidedBeforeTheRunStayPlainJSON() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let bad = try await flowd.client.post("/run", json: #"{"input": 1, "story_id": "s"}"#, headers: [("Accept", "text/event-stream")])
            #expect(bad.status == 422)
            #expect(bad.header("Content-Type") == "application/json")
            let unknown = try await flowd.client.post("/run", json: #"{"flow": "nope", "input": "x", "story_id": "s"}"#, headers: [("Accept", "text/event-stream")])
            #expect(unknown.status == 400)
        }
    }

    @Test(arguments: [
        ("text/event-stream", true),
        ("application/json, text/event-stream", true),
        ("text/event-stream;q=0.5, application/json", false),
        ("text/event-stream; q=0", false),
        ("application/json;q=0.4, text/event-stream;q=0.6", true),
        ("text/event-stream;q=0.5, */*;q=0.1", true),
        ("text/*", false),
        ("*/*", false),
        ("application/json", false),
    ])
    func theAcceptHeadersQualitiesPickStreamOrJSON(accept: String, streams: Bool) async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let response = try await flowd.client.post("/run", json: #"{"input": "q", "story_id": "accept-1"}"#, headers: [("Accept", accept)])
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == (streams ? "text/event-stream" : "application/json"), "\(accept)")
        }
    }

    @Test func heartbeatCommentsKeepAQuietStreamOpen() async throws {
        try await withFlowd(Fixtures.basic, configure: { $0.heartbeatSeconds = 0.2 }) { flowd in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run", body: #"{"flow": "slow", "input": "x", "story_id": "sse-4"}"#)
            let events = try await stream.all()
            #expect(events.last?.event == "done")
            #expect(stream.raw.components(separatedBy: ": ping\n").count - 1 >= 2, "\(stream.raw)")
            // A comment with no blank line after it, which clients would read as an empty event.
            #expect(!stream.raw.contains(": ping\n\n"), "\(stream.raw)")
        }
    }

    @Test func aBackgroundRunIsPolledToCompletionAndItsEventsReplay() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let started = try await flowd.post("/runs", #"{"input": "bg", "story_id": "bg-1"}"#)
            #expect(started.status == 202)
            let runID = try #require(started.json["run_id"]?.stringValue)
            #expect(started.json["status"]?.stringValue == "queued")
            #expect(started.header("Location") == "/runs/\(runID)")
            let record = try await Durable.waitForRecord(flowd.client, runID)
            #expect(record["status"]?.stringValue == "succeeded")
            #expect(record["result"]?.stringValue == "summary of analysis of bg (before: )")
            #expect(record["flow"]?.stringValue == "default")
            #expect(record["story_id"]?.stringValue == "bg-1")
            #expect(record["pending_docs"] == .null)
            #expect(record["error"] == .null)
            #expect(record["created_at"]?.stringValue != nil && record["finished_at"]?.stringValue != nil)

            let replay = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events")
            let events = try await replay.all()
            #expect(names(events) == [
                "progress analyst started", "progress analyst completed", "result analyst",
                "progress summarizer started", "progress summarizer completed", "result summarizer", "done",
            ])
            checkNumberingAndRunID(events, runID: runID)

            let resumed = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events", headers: [("Last-Event-ID", "5")])
            let rest = try await resumed.all()
            #expect(rest.map(\.id) == ["6", "7"])
            let nothingLeft = try await flowd.client.get("/runs/\(runID)/events", headers: [("Last-Event-ID", "7")])
            #expect(nothingLeft.status == 204)
            let r1 = try await flowd.client.get("/runs/unknown-run")
            #expect(r1.status == 404)
            let r2 = try await flowd.client.get("/runs/unknown-run/events")
            #expect(r2.status == 404)
            let r3 = try await flowd.client.get("/runs/bad%20id")
            #expect(r3.status == 422)
        }
    }

    @Test func liveEventsEqualTheReplayAndLastEventIDResumesMidRun() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let started = try await flowd.post("/runs", #"{"flow": "review", "input": "ok", "story_id": "live-1"}"#)
            let runID = try #require(started.json["run_id"]?.stringValue)
            let live = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events")
            let liveEvents = try await live.all()
            let replayed = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events").all()
            #expect(liveEvents == replayed)
            #expect(liveEvents.last?.event == "done")
        }
        try await withFlowd(Fixtures.basic) { flowd in
            let started = try await flowd.post("/runs", #"{"flow": "sleepy", "input": "x", "story_id": "live-2"}"#)
            let runID = try #require(started.json["run_id"]?.stringValue)
            let first = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events")
            let startedEvent = try await first.next()
            #expect(startedEvent?.id == "1")
            first.close()
            // Reconnect as an EventSource does, while the agent is still sleeping.
            let resumed = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events", headers: [("Last-Event-ID", "1")])
            let rest = try await resumed.all()
            #expect(rest.map(\.id) == ["2", "3", "4"])
            #expect(names(rest) == ["progress sleeper completed", "result sleeper", "done"])
        }
    }

    @Test func aClientThatHangsUpDoesNotStopTheRun() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run", body: #"{"flow": "sleepy", "input": "gone", "story_id": "hangup"}"#)
            let first = try await stream.next()
            let runID = try #require(first?.json["run_id"]?.stringValue)
            stream.close()
            let record = try await Durable.waitForRecord(flowd.client, runID)
            #expect(record["status"]?.stringValue == "succeeded")
            let contexts = try await flowd.contexts(story: "hangup")
            #expect(contexts["sleeper:hangup"]?["last_output"] == "gone|")
        }
    }

    @Test func cancellingARunStopsItLeavesMemoryAloneAndEndsItsStream() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let started = try await flowd.post("/runs", #"{"flow": "slow", "input": "x", "story_id": "cancel-1"}"#)
            let runID = try #require(started.json["run_id"]?.stringValue)
            let stream = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events")
            let first = try await stream.next()
            #expect(first?.json["status"]?.stringValue == "started")
            let cancel = try await flowd.client.request("POST", "/runs/\(runID)/cancel")
            #expect(cancel.status == 202)
            let rest = try await stream.all()
            #expect(names(rest) == ["cancelled"])
            #expect(rest.first?.json["run_id"]?.stringValue == runID)
            let record = try await flowd.client.get("/runs/\(runID)").json
            #expect(record["status"]?.stringValue == "cancelled")
            #expect(record["result"] == .null)
            // The slow agent (1 s) does not finish its work later: this wait is the behaviour
            // under test (nothing happens), not a synchronisation.
            try await Task.sleep(for: .milliseconds(1300))
            let r4 = try await flowd.contexts(story: "cancel-1")
            #expect(r4.isEmpty)
            let r5 = try await flowd.client.get("/runs/\(runID)")
            #expect(r5.json["status"]?.stringValue == "cancelled")
            let events = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events").all()
            #expect(names(events) == ["progress slow started", "cancelled"])

            let r6 = try await flowd.client.request("POST", "/runs/\(runID)/cancel")

            #expect(r6.status == 202)
            let done = try await flowd.run(#"{"input": "x", "story_id": "cancel-2"}"#)
            let doneID = try #require(done.json["run_id"]?.stringValue)
            let r7 = try await flowd.client.request("POST", "/runs/\(doneID)/cancel")
            #expect(r7.status == 409)
            let r8 = try await flowd.client.request("POST", "/runs/nope/cancel")
            #expect(r8.status == 404)
        }
    }

    @Test func aCancelledSynchronousRunAnswers409() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let pending = Task { try await flowd.run(#"{"flow": "slow", "input": "x", "story_id": "cancel-3"}"#) }
            try await waitUntil("the run to be live") { !flowd.app.runs.liveRunIDs.isEmpty }
            let id = try #require(flowd.app.runs.liveRunIDs.first)
            let r9 = try await flowd.client.request("POST", "/runs/\(id)/cancel")
            #expect(r9.status == 202)
            let response = try await pending.value
            #expect(response.status == 409)
            #expect(response.json["detail"]?.stringValue == "Run cancelled")
        }
    }
}
