import FlowdJSON
import FlowdSync
import FlowdTesting
import Foundation
import Stores
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the suites of durable runs and idempotency keys share: agents with an llm step
/// answered by a `StubLLMServer` that counts its calls, `flowd serve` as a child process
/// killed with SIGKILL, and conditions awaited through the API with a deadline.
enum Durable {
    /// The llm agent's answer (the stub's, for model `thinker-model`).
    static let thought = "thought"
    static let finished: Set<String> = ["succeeded", "failed", "cancelled", "pending_docs"]

    /// Agents of the crash tests:
    /// - `thinker` (llm, model `thinker-model`): the step that must never be paid twice;
    /// - `slow` (mock, `slowMilliseconds`): the step a kill lands in; its output shows the
    ///   thinker's journaled output (`slow after thought`). Long, so that the kill lands in
    ///   it however loaded the machine; `kill` shortens it for the restart (`quickSlowStep`);
    /// - `tail` (template): `<input>:<thinker's output><<its own last output in the story>`,
    ///   so a story's chain of results shows the order its runs ran in, and that each saw
    ///   the thinker's output;
    /// - `gate` (llm, model `gate-model`) and `joiner` (template `<thinker>+<gate>`), for retries.
    /// Flows: `default: [thinker, slow, tail]`, `quick: [thinker, tail]`,
    /// `gated: [thinker, gate, joiner]`.
    static func agents(slowMilliseconds: Int = 20_000) throws -> TempDirectory {
        let directory = try TempDirectory()
        try directory.write("agents/thinker.yaml", "kind: llm\nmodel: thinker-model\nprompt: \"think about {{input}}\"\n")
        try directory.write("agents/slow.yaml", "kind: mock\ndelay_ms: \(slowMilliseconds)\nprompt: \"slow after {{outputs.thinker}}\"\n")
        try directory.write("agents/tail.yaml", "kind: template\nprompt: \"{{input}}:{{outputs.thinker}}<{{memory.last_output}}\"\n")
        try directory.write("agents/gate.yaml", "kind: llm\nmodel: gate-model\nprompt: \"gate {{outputs.thinker}}\"\n")
        try directory.write("agents/joiner.yaml", "kind: template\nprompt: \"{{outputs.thinker}}+{{outputs.gate}}\"\n")
        try directory.write("agents/flows.yaml", """
            default: [thinker, slow, tail]
            quick: [thinker, tail]
            gated: [thinker, gate, joiner]

            """)
        return directory
    }

    /// A stub whose `thinker-model` answers `thought`; `gate-model` fails its first
    /// `gateFailures` calls (500) and then answers `gated`.
    static func stub(gateFailures: Int = 0) throws -> StubLLMServer {
        let gateCalls = Counter()
        return try StubLLMServer { request in
            switch request.model {
            case "gate-model":
                return gateCalls.next() <= gateFailures ? .failure(status: 500, "gate overloaded") : .completion("gated")
            default:
                return .completion(thought)
            }
        }
    }

    /// `--agents`, `--docs`, `--data` of `directory`, then `extra`.
    static func arguments(_ directory: TempDirectory, _ extra: [String] = []) -> [String] {
        ["--agents", directory.path("agents").path, "--docs", directory.path("docs").path,
         "--data", directory.path("data").path] + extra
    }

    /// `flowd serve` on `directory`'s files, its llm agents pointed at `stub`.
    static func start(_ directory: TempDirectory, stub: StubLLMServer?, _ extra: [String] = [],
                      environment: [String: String] = [:]) async throws -> FlowdProcess {
        var env = stub?.environment ?? [:]
        for (key, value) in environment { env[key] = value }
        return try await FlowdProcess.start(serve: arguments(directory, extra), environment: env)
    }

    /// kill -9, and reap the child. Its `slow` step is then made quick on disk, so that the
    /// process started next on the same agents goes on with the resumed run at once instead
    /// of waiting out the long step the kill had to land in (processes already running keep
    /// the step they loaded).
    static func kill(_ flowd: FlowdProcess) async {
        flowd.signal(SIGKILL)
        _ = await flowd.waitForExit(timeout: .seconds(10))
        let arguments = flowd.process.arguments ?? []
        if let index = arguments.firstIndex(of: "--agents"), index + 1 < arguments.count {
            let slow = URL(fileURLWithPath: arguments[index + 1]).appendingPathComponent("slow.yaml")
            if FileManager.default.fileExists(atPath: slow.path) {
                try? Data(quickSlowStep.utf8).write(to: slow)
            }
        }
    }

    /// `slow` as a restart after a kill runs it.
    static let quickSlowStep = "kind: mock\ndelay_ms: 300\nprompt: \"slow after {{outputs.thinker}}\"\n"

    /// SIGTERM (drain), and the exit status.
    static func stop(_ flowd: FlowdProcess) async -> Int32? {
        flowd.signal(SIGTERM)
        return await flowd.waitForExit()
    }

    /// Polls `GET /runs/{id}` until its status is one of `wanted`; the record.
    @discardableResult
    static func waitForRecord(_ client: any TestClient, _ runID: String, _ wanted: Set<String> = finished,
                              timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let deadline = ContinuousClock.now + scaled(timeout)
        while true {
            let response = try await client.get("/runs/\(runID)")
            let record = response.json
            if let status = record["status"]?.stringValue, wanted.contains(status) { return record }
            guard ContinuousClock.now < deadline else {
                throw TestClientError("run \(runID) never became \(wanted.sorted()): \(response.status) \(response.text)")
            }
            try await Task.sleep(for: .milliseconds(40))
        }
    }

    /// Polls until `condition` holds (it is evaluated at least once).
    static func waitUntil(_ what: String, timeout: Duration = .seconds(30),
                          _ condition: () async throws -> Bool) async throws {
        try await FlowdTesting.waitUntil(what, timeout: timeout, every: .milliseconds(40), condition)
    }

    /// Follows `GET /runs/{id}/events` live until an event matches `predicate`; the events
    /// read up to it (it included). Throws when the stream ends or the deadline passes first.
    static func waitForEvent(port: Int, runID: String, timeout: Duration = .seconds(30),
                             _ what: String, where predicate: (SSEEvent) -> Bool) async throws -> [SSEEvent] {
        let stream = try await SSEConnection.open(port: port, "GET", "/runs/\(runID)/events")
        defer { stream.close() }
        guard stream.head.status == 200 else {
            throw TestClientError("GET /runs/\(runID)/events answered \(stream.head.status)")
        }
        let deadline = ContinuousClock.now + scaled(timeout)
        var seen: [SSEEvent] = []
        while ContinuousClock.now < deadline {
            guard let event = try await stream.next() else { break }
            seen.append(event)
            if predicate(event) { return seen }
        }
        throw TestClientError("run \(runID): no \(what) among \(seen.map(\.summary))")
    }

    /// Every stored event of a run, from the first (`GET /runs/{id}/events`, to its end).
    static func events(port: Int, runID: String) async throws -> [SSEEvent] {
        let stream = try await SSEConnection.open(port: port, "GET", "/runs/\(runID)/events")
        defer { stream.close() }
        guard stream.head.status == 200 else {
            throw TestClientError("GET /runs/\(runID)/events answered \(stream.head.status)")
        }
        return try await stream.all()
    }

    /// The story's runs that committed memory, newest first, read without `GET /runs`: a
    /// plain `/run` of `flow` (whose last agent is a chain, `<input>…<its last output>`,
    /// such as `tail` or `chain`) with input `probe` runs after every run that arrived
    /// before it, so its result lists them all. `separator` splits the chain; the probe's
    /// own link is dropped.
    static func chain(_ client: any TestClient, story: String, flow: String = "default",
                      separator: Character = "|") async throws -> [String] {
        let response = try await client.post("/run", json: #"{"flow": "\#(flow)", "input": "probe", "story_id": "\#(story)"}"#)
        guard response.status == 200, let result = response.json["result"]?.stringValue else {
            throw TestClientError("the probe of story \(story) answered \(response.status) \(response.text)")
        }
        return Array(result.split(separator: separator).map(String.init).dropFirst())
    }

    /// `flowd_runs_in_flight` of the server's `/metrics`.
    static func runsInFlight(_ client: any TestClient) async throws -> Int {
        let samples = try PrometheusText.parse(try await client.get("/metrics").text)
        return Int(samples.first { $0.name == "flowd_runs_in_flight" }?.value ?? -1)
    }

    /// How many runs of `flow` this process finished (`flowd_runs_total`, every outcome).
    static func runsFinished(_ client: any TestClient, flow: String) async throws -> Int {
        let samples = try PrometheusText.parse(try await client.get("/metrics").text)
        return Int(samples.filter { $0.name == "flowd_runs_total" && $0.labels["flow"] == flow }.map(\.value).reduce(0, +))
    }

    /// The numbered events' ids are 1, 2, 3, … with none repeated or skipped.
    static func expectIDsCountUp(_ events: [SSEEvent], _ comment: String = "",
                                 sourceLocation: SourceLocation = #_sourceLocation) {
        let ids = events.map { Int($0.id ?? "") ?? -1 }
        #expect(ids == Array(1..<(ids.count + 1)),
                "event ids \(ids) \(comment): \(events.map(\.summary))", sourceLocation: sourceLocation)
    }

    /// An isolated memory context, or nil when absent.
    static func context(_ client: any TestClient, agent: String, story: String) async throws -> JSONValue? {
        let response = try await client.get("/memory/isolated/\(agent):\(story)")
        return response.status == 200 ? response.json["value"] : nil
    }
}

extension SSEEvent {
    /// The `status` of a `progress` event (`started`, `completed`, `failed`, `resumed`), else nil.
    var progressStatus: String? { event == "progress" ? json["status"]?.stringValue : nil }
    /// The `agent` its data names, or nil (also for `"agent": null`).
    var agent: String? { json["agent"]?.stringValue }

    func isProgress(_ status: String, agent: String?) -> Bool {
        progressStatus == status && self.agent == agent
    }

    /// `id event status agent` for failure messages.
    var summary: String {
        "\(id ?? "-") \(event ?? "") \(progressStatus ?? "") \(agent ?? "")".trimmingCharacters(in: .whitespaces)
    }
}

extension TestClient {
    /// `POST path` with a JSON body and, when given, an `Idempotency-Key`.
    func post(_ path: String, json: String, key: String?, headers: [(String, String)] = []) async throws -> TestResponse {
        try await post(path, json: json, headers: (key.map { [("Idempotency-Key", $0)] } ?? []) + headers)
    }
}

extension TestResponse {
    /// True when the answer says it replays an earlier request's (`Idempotent-Replayed: true`).
    var isReplayed: Bool { header("Idempotent-Replayed")?.lowercased() == "true" }
}

/// A count shared by the threads of a stub.
final class Counter: Sendable {
    private let value = Locked(0)

    /// Adds one; the new value.
    func next() -> Int {
        value.withLock { value in
            value += 1
            return value
        }
    }
}
