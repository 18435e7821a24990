import FlowdTesting
import Foundation
import Stores
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `token` events (`tokens=true`) and the usage llm providers report: SPEC "Live tokens,
/// run history, flow graphs", its first two points.
@Suite struct LiveTokenTests {
    static let agents = TestAgents(
        agents: [
            "talker": "kind: llm\nmodel: talker-model\nprompt: \"say {{input}}\"\n",
            "flaky": "kind: llm\nmodel: flaky-model\nmax_retries: 2\nprompt: \"try {{input}}\"\n",
            "after": "kind: template\nprompt: \"after {{outputs.talker}}\"\n",
            "echo": "kind: template\nprompt: \"{{input}}\"\n",
        ],
        flows: "default: [talker, after]\nretried: [flaky]\nplain: [echo]\n")

    static let pieces = ["Hel", "lo", ", ", "wor", "ld"]

    /// `talker-model` streams `pieces` one every 20 ms with usage 7 + 4; `flaky-model`'s first
    /// call streams "half" with usage 5 + 1 and then breaks, its second answers plain JSON
    /// "fine" with usage 2 + 3.
    static func stub() throws -> StubLLMServer {
        let flakyCalls = Counter()
        return try StubLLMServer { request in
            switch request.model {
            case "flaky-model":
                if flakyCalls.next() == 1 {
                    var reply = StubLLMServer.Reply.streamed(["half"], promptTokens: 5, completionTokens: 1, pieceDelay: .milliseconds(5))
                    reply.parts = (reply.parts ?? []).dropLast() + ["data: {not json\n\n"]
                    return reply
                }
                return .completion("fine", promptTokens: 2, completionTokens: 3)
            default:
                return .streamed(pieces, promptTokens: 7, completionTokens: 4, pieceDelay: .milliseconds(20))
            }
        }
    }

    static func withTokenFlowd(_ body: (TestFlowd, StubLLMServer) async throws -> Void) async throws {
        let stub = try stub()
        defer { stub.stop() }
        try await withFlowd(agents, configure: {
            $0.llmBaseURL = stub.baseURL
            $0.llmModel = "stub-model"
        }) { flowd in try await body(flowd, stub) }
    }

    @Test func aClientWithTokensGetsThePiecesBeforeTheResultAndTheyJoinToTheOutput() async throws {
        try await Self.withTokenFlowd { flowd, _ in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run?tokens=true",
                                                      body: #"{"input":"hi","story_id":"s1"}"#)
            #expect(stream.head.status == 200)
            let events = try await stream.all()
            let runID = try #require(stream.head.header("X-Run-ID"))
            let tokens = events.filter { $0.event == "token" }
            #expect(tokens.map { $0.json["text"]?.stringValue ?? "" }.joined() == "Hello, world")
            #expect(tokens.allSatisfy { $0.json["agent"]?.stringValue == "talker" && $0.json["run_id"]?.stringValue == runID })
            #expect(tokens.allSatisfy { Set($0.json.keys) == ["run_id", "agent", "text"] })
            let result = try #require(events.firstIndex { $0.event == "result" && $0.json["agent"]?.stringValue == "talker" })
            let lastToken = try #require(events.lastIndex { $0.event == "token" })
            #expect(lastToken < result)
            #expect(events[result].json["data"]?.stringValue == "Hello, world")
            // Token events have no `id:` line: the numbered ones still count 1, 2, 3, …
            Self.expectTokensUnnumbered(stream.raw)
            #expect(Self.numberedIDs(stream.raw) == Array(1...Self.numberedIDs(stream.raw).count))
            #expect(events.last?.event == "done")

            let record = try await flowd.client.get("/runs/\(runID)").json
            #expect(record["usage"] == ["prompt_tokens": 7, "completion_tokens": 4])
        }
    }

    @Test func aClientWithoutTokensGetsNone() async throws {
        try await Self.withTokenFlowd { flowd, _ in
            for query in ["", "?tokens=false"] {
                let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run\(query)",
                                                          body: #"{"input":"hi","story_id":"s2"}"#)
                let events = try await stream.all()
                #expect(!events.contains { $0.event == "token" })
                #expect(!stream.raw.contains("event: token"))
                #expect(events.first { $0.event == "result" }?.json["data"]?.stringValue == "Hello, world")
            }
        }
    }

    @Test func resumingWithLastEventIDSkipsTokens() async throws {
        try await Self.withTokenFlowd { flowd, _ in
            let start = try await flowd.post("/runs", #"{"input":"hi","story_id":"s3"}"#)
            let runID = try #require(start.json["run_id"]?.stringValue)
            // Follow live from the first event, with tokens, then resume after event 1.
            let live = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events?tokens=true")
            let liveEvents = try await live.all()
            #expect(liveEvents.contains { $0.event == "token" } || liveEvents.first?.event != "progress",
                    "joined before the agent streamed, it saw its tokens")
            Self.expectTokensUnnumbered(live.raw)
            let resumed = try await SSEConnection.open(port: flowd.server.port, "GET", "/runs/\(runID)/events?tokens=true",
                                                       headers: [("Last-Event-ID", "1")])
            let events = try await resumed.all()
            #expect(!events.contains { $0.event == "token" })
            #expect(Self.numberedIDs(resumed.raw) == Array(2...(1 + Self.numberedIDs(resumed.raw).count)))
            #expect(Self.numberedIDs(live.raw) == [1] + Self.numberedIDs(resumed.raw))
        }
    }

    @Test func tokensTakesTrueOrFalseOnly() async throws {
        try await Self.withTokenFlowd { flowd, _ in
            for query in ["tokens=maybe", "tokens=1", "tokens=", "tokens=true&tokens=true"] {
                let run = try await flowd.post("/run?\(query)", #"{"input":"hi","story_id":"s4"}"#,
                                               headers: [("Accept", "text/event-stream")])
                #expect(run.status == 422, "\(query)")
                let detail = run.json["detail"]?.elements ?? []
                #expect(detail.contains { $0["loc"]?.strings == ["query", "tokens"] }, "\(run.text)")
                let events = try await flowd.client.get("/runs/some-run/events?\(query)")
                #expect(events.status == 422, "\(query)")
                #expect((events.json["detail"]?.elements ?? []).first?["loc"]?.strings == ["query", "tokens"])
            }
            // 415 comes first, and a body's issues come with the query's.
            let unsupported = try await flowd.client.request(
                "POST", "/run?tokens=maybe", headers: [("Content-Type", "text/plain")], body: Array("x".utf8))
            #expect(unsupported.status == 415)
            let both = try await flowd.post("/run?tokens=maybe", #"{"input":"hi"}"#)
            #expect(both.status == 422)
            #expect(Set((both.json["detail"]?.elements ?? []).compactMap { ($0["loc"]?.strings)?.joined(separator: ".") })
                    == ["body.story_id", "query.tokens"])
        }
    }

    @Test func usageCountsEveryAttemptAndGoesToMetrics() async throws {
        try await Self.withTokenFlowd { flowd, stub in
            let stream = try await SSEConnection.open(port: flowd.server.port, "POST", "/run?tokens=true",
                                                      body: #"{"flow":"retried","input":"x","story_id":"s5"}"#)
            let events = try await stream.all()
            let runID = try #require(stream.head.header("X-Run-ID"))
            // The failed attempt's piece, then the plain-JSON answer as one token.
            #expect(events.filter { $0.event == "token" }.map { $0.json["text"]?.stringValue } == ["half", "fine"])
            #expect(events.last?.event == "done")
            #expect(stub.calls(model: "flaky-model") == 2)
            let request = try #require(stub.requests.first)
            #expect(request.json?["stream"]?.boolValue == true)
            #expect((request.json?["stream_options"])?["include_usage"]?.boolValue == true)
            let record = try await flowd.client.get("/runs/\(runID)").json
            #expect(record["usage"] == ["prompt_tokens": 7, "completion_tokens": 4])

            // The default flow through plain /run (its stream's usage), and a flow without llm agents (zeros).
            let llm = try await flowd.run(#"{"input":"x","story_id":"s6"}"#)
            #expect(llm.status == 200)
            let llmRecord = try await flowd.client.get("/runs/\(try #require(llm.header("X-Run-ID")))").json
            #expect(llmRecord["usage"] == ["prompt_tokens": 7, "completion_tokens": 4])
            let plain = try await flowd.run(#"{"flow":"plain","input":"x","story_id":"s6"}"#)
            let plainRecord = try await flowd.client.get("/runs/\(try #require(plain.header("X-Run-ID")))").json
            #expect(plainRecord["usage"] == ["prompt_tokens": 0, "completion_tokens": 0])

            let metrics = try await flowd.client.get("/metrics").text
            let lines = metrics.split(separator: "\n").map(String.init)
            func value(_ name: String, flow: String, agent: String) -> Int? {
                lines.first { $0.hasPrefix(name + "{") && $0.contains("flow=\"\(flow)\"") && $0.contains("agent=\"\(agent)\"") }
                    .flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
            }
            #expect(value("flowd_llm_prompt_tokens_total", flow: "retried", agent: "flaky") == 7)
            #expect(value("flowd_llm_completion_tokens_total", flow: "retried", agent: "flaky") == 4)
            #expect(value("flowd_llm_prompt_tokens_total", flow: "default", agent: "talker") == 7)
            #expect(value("flowd_llm_completion_tokens_total", flow: "default", agent: "talker") == 4)
        }
    }

    // MARK: Helpers

    /// Every `event: token` block of `raw` is without an `id:` line.
    static func expectTokensUnnumbered(_ raw: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for block in raw.components(separatedBy: "\n\n") where block.contains("event: token") {
            #expect(!block.split(separator: "\n").contains { $0.hasPrefix("id:") }, "\(block)", sourceLocation: sourceLocation)
        }
    }

    /// The `id:` values of `raw`, in order.
    static func numberedIDs(_ raw: String) -> [Int] {
        raw.split(separator: "\n").compactMap { line in line.hasPrefix("id: ") ? Int(line.dropFirst(4)) : nil }
    }
}

/// A follower that never reads does not hold the agent up, and the server does not keep what
/// it could not send: the real binary streams 8 MB of tokens past 20 such followers. It is
/// heavy and runs beside the whole suite: its reads wait minutes, not the client's usual 30 s,
/// for a debug build answering 8 MB records on a loaded machine (it bounds memory, not time).
@Suite struct SlowTokenFollowerTimingTests {
    @Test func aFollowerThatNeverReadsNeitherSlowsTheRunNorGrowsMemory() async throws {
        let directory = try TempDirectory()
        defer { directory.remove() }
        try directory.write("agents/talker.yaml", "kind: llm\nmodel: big-model\ntimeout: 900\nprompt: \"say {{input}}\"\n")
        try directory.write("agents/flows.yaml", "default: [talker]\n")
        let piece = String(repeating: "x", count: 999) + " "
        let pieces = Array(repeating: piece, count: 8192)
        let go = DispatchSemaphore(value: 0)
        let streamed = DispatchSemaphore(value: 0)
        let finish = DispatchSemaphore(value: 0)
        let stub = try StubLLMServer { _ in
            go.wait()
            var reply = StubLLMServer.Reply.streamed(pieces, promptTokens: 1, completionTokens: 8192, pieceDelay: .zero)
            reply.beforeLastPart = {
                streamed.signal()
                finish.wait()
            }
            return reply
        }
        defer {
            go.signal()
            finish.signal()
            stub.stop()
        }
        let flowd = try await Durable.start(directory, stub: stub)
        defer { flowd.signal(SIGKILL) }
        let port = flowd.port

        let started = try await flowd.client.post("/runs", json: #"{"input":"a","story_id":"big"}"#)
        let runID = try #require(started.json["run_id"]?.stringValue)
        // Each stalled follower reads its head and the agent's `started` (so it has joined and
        // the provider has been called), then nothing more.
        var stalled: [TestConnection] = []
        defer { for connection in stalled { shutdown(connection.fd, Int32(SHUT_RDWR)) } }
        for _ in 0..<20 {
            let connection = try TestConnection(port: port, timeoutSeconds: 120)
            stalled.append(connection)
            try connection.send("GET /runs/\(runID)/events?tokens=true HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            let joined = try await TestHTTPClient.blocking { () -> Bool in
                let head = try connection.readHead()
                var text = ""
                while head.status == 200, !text.contains("\"started\""), let chunk = try connection.readChunk() {
                    text += String(decoding: chunk, as: UTF8.self)
                }
                return text.contains("\"started\"")
            }
            #expect(joined)
        }
        let before = try Self.residentBytes(flowd.process.processIdentifier)

        // The provider streams everything but its last chunk past the 20 followers that read nothing.
        go.signal()
        let bound = scaled(.seconds(60)).inSeconds
        let sent = try await TestHTTPClient.blocking { streamed.wait(timeout: .now() + bound) == .success }
        #expect(sent, "the provider's stream was held up")
        let during = try Self.residentBytes(flowd.process.processIdentifier)
        finish.signal()
        // A debug build encodes the 8 MB `result` for the followers byte by byte: give it time
        // (this test bounds memory, not time).
        var patient = flowd.client
        patient.timeoutSeconds = 120
        let record = try await Durable.waitForRecord(patient, runID, timeout: .seconds(120))
        #expect(record["status"]?.stringValue == "succeeded", "\(record)")
        #expect(record["usage"] == ["prompt_tokens": 1, "completion_tokens": 8192])
        // Unbounded, each stalled follower would keep what the kernel does not take of its
        // 9 MB of token events (about 4 MB: the socket's send buffer), 100 MB in all; bounded,
        // the growth (14 MB when measured) is the agent's own output and the HTTP client's buffers.
        #expect(during - before < 32 << 20, "RSS grew from \(before >> 20) MB to \(during >> 20) MB")
    }

    /// VmRSS of a process, in bytes.
    static func residentBytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw TestClientError("no VmRSS for \(pid)")
        }
        return kilobytes * 1024
    }
}

extension Duration {
    fileprivate var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Usage across a process's death and a retry: the journal keeps each step's usage.
@Suite struct UsageAcrossRunsTests {
    /// `thinker` reports 10 + 1 tokens, `gate` fails its first `gateFailures` calls after
    /// reporting 5 + 1 (streamed, then a broken chunk) and then answers with 3 + 2.
    static func stub(gateFailures: Int) throws -> StubLLMServer {
        let gateCalls = Counter()
        return try StubLLMServer { request in
            switch request.model {
            case "gate-model":
                if gateCalls.next() <= gateFailures {
                    var reply = StubLLMServer.Reply.streamed(["no"], promptTokens: 5, completionTokens: 1, pieceDelay: .milliseconds(1))
                    reply.parts = (reply.parts ?? []).dropLast() + ["data: {broken\n\n"]
                    return reply
                }
                return .streamed(["gated"], promptTokens: 3, completionTokens: 2)
            default:
                return .streamed(["thou", "ght"], promptTokens: 10, completionTokens: 1)
            }
        }
    }

    /// Killed in `slow`, after `thinker`'s step was journaled: the resumed run does not call
    /// the provider again, and its usage is the journaled step's.
    @Test func aResumedRunCountsItsJournaledStepsUsage() async throws {
        let stub = try Self.stub(gateFailures: 0)
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let first = try await Durable.start(directory, stub: stub)
        let runID = try #require(try await first.client.post("/runs", json: #"{"input": "u", "story_id": "usage"}"#).json["run_id"]?.stringValue)
        _ = try await Durable.waitForEvent(port: first.port, runID: runID, "slow started") { $0.isProgress("started", agent: "slow") }
        #expect(try await first.client.get("/runs/\(runID)").json["usage"] == ["prompt_tokens": 10, "completion_tokens": 1])
        await Durable.kill(first)

        let second = try await Durable.start(directory, stub: stub)
        let record = try await Durable.waitForRecord(second.client, runID)
        #expect(record["status"]?.stringValue == "succeeded")
        #expect(record["resumed"]?.int == 1)
        #expect(stub.callCount == 1)
        #expect(record["usage"] == ["prompt_tokens": 10, "completion_tokens": 1])
        #expect(await Durable.stop(second) == 0)
    }

    /// The failed run counts its failed attempt; its retry counts only what it ran (gate's
    /// second call), not the thinker step it took over.
    @Test func aRetryCountsOnlyTheStepsItRan() async throws {
        let stub = try Self.stub(gateFailures: 1)
        defer { stub.stop() }
        let directory = try Durable.agents()
        defer { directory.remove() }
        let flowd = try await Durable.start(directory, stub: stub)
        defer { flowd.signal(SIGKILL) }
        let failed = try await flowd.client.post("/run", json: #"{"flow": "gated", "input": "u", "story_id": "retry-usage"}"#)
        #expect(failed.status == 500, "\(failed.text)")
        let runID = try #require(failed.header("X-Run-ID"))
        let record = try await Durable.waitForRecord(flowd.client, runID)
        #expect(record["status"]?.stringValue == "failed")
        #expect(record["usage"] == ["prompt_tokens": 15, "completion_tokens": 2])

        let retry = try await flowd.client.post("/runs/\(runID)/retry", json: "{}")
        let retryID = try #require(retry.json["run_id"]?.stringValue, "\(retry.text)")
        let retried = try await Durable.waitForRecord(flowd.client, retryID)
        #expect(retried["status"]?.stringValue == "succeeded", "\(retried)")
        #expect(retried["usage"] == ["prompt_tokens": 3, "completion_tokens": 2])
        #expect(stub.calls(model: "thinker-model") == 1)
    }
}
