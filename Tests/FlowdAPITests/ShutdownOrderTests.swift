import FlowdTesting
import Foundation
import Testing

/// The shutdown order of docs/architecture.md on the real binary, whose `ServiceGroup` takes
/// SIGTERM and SIGINT: whatever the signal and however often it comes, what is in flight
/// finishes or is cancelled at the drain timeout, no suspended connection is left when the
/// daemon stops (libmicrohttpd 0.9.75 would abort: exit status 6, not 0), and the exit is 0.
@Suite("shutdown order")
struct ShutdownOrderTests {
    private func agents(delayMilliseconds: Int) throws -> TempDirectory {
        let directory = try TempDirectory()
        try directory.write("agents/sleeper.yaml", "kind: mock\ndelay_ms: \(delayMilliseconds)\noutput: \"woke\"\n")
        try directory.write("agents/flows.yaml", "default: [sleeper]\n")
        return directory
    }

    private func arguments(_ directory: TempDirectory, _ extra: [String]) -> [String] {
        ["--agents", directory.path("agents").path, "--docs", directory.path("docs").path, "--data", directory.path("data").path] + extra
    }

    /// Until `condition` holds (the server's state as a client sees it), for at most 30 s.
    private func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("never: \(what)")
    }

    /// Runs `body`; when it throws, the child's state and log are recorded with the error, so
    /// that a failure on a loaded machine says what the process did.
    private func reporting(_ flowd: FlowdProcess, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            let state = flowd.process.isRunning ? "running" : "exited \(flowd.process.terminationStatus) (\(flowd.process.terminationReason == .uncaughtSignal ? "signal" : "exit"))"
            Issue.record("\(error); flowd \(state); its log:\n\(flowd.log)")
            throw error
        }
    }

    private func runsInFlight(_ client: TestHTTPClient) async throws -> Double? {
        try PrometheusText.parse(try await client.get("/metrics").text).first { $0.name == "flowd_runs_in_flight" }?.value
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalLetsTheRunInFlightFinishThenExitsZero(signal: Int32) async throws {
        let runTime = scaled(.milliseconds(1500))
        let directory = try agents(delayMilliseconds: Int(runTime / .milliseconds(1)))
        defer { directory.remove() }
        let flowd = try await FlowdProcess.start(serve: arguments(directory, ["--drain-timeout", "60"]))
        let client = flowd.client
        try await reporting(flowd) {
            let run = Task { try await client.post("/run", json: #"{"input": "x", "story_id": "in-flight"}"#) }
            try await eventually("one run in flight") { try await runsInFlight(client) == 1 }
            flowd.signal(signal)

            let response = try await run.value
            #expect(response.status == 200)
            #expect(response.text.contains(#""result":"woke""#))
            #expect(await flowd.waitForExit() == 0, "flowd's log:\n\(flowd.log)")
        }
    }

    /// The run outlasts the drain timeout, so that the drain is surely still going when the
    /// later signals come: they neither stop the process early nor kill it; the run is
    /// cancelled at the drain timeout, counted from the first signal, and the exit is 0.
    @Test func aSecondAndThirdSignalDuringTheDrainChangeNothing() async throws {
        let directory = try agents(delayMilliseconds: 60_000)
        defer { directory.remove() }
        let flowd = try await FlowdProcess.start(serve: arguments(directory, ["--drain-timeout", "5"]))
        let client = flowd.client
        try await reporting(flowd) {
            let run = Task { try await client.post("/run", json: #"{"input": "x", "story_id": "twice"}"#) }
            try await eventually("one run in flight") { try await runsInFlight(client) == 1 }
            let signalled = ContinuousClock.now
            flowd.signal(SIGTERM)
            try await eventually("draining") { try await client.get("/readyz").status == 503 }
            flowd.signal(SIGTERM)
            flowd.signal(SIGINT)
            // Still draining, not stopped: probes are answered and the run goes on.
            #expect(try await client.get("/healthz").status == 200)

            let response = try await run.value
            #expect(response.status == 503)
            #expect(ContinuousClock.now - signalled >= .seconds(4), "the drain was cut short")
            #expect(await flowd.waitForExit() == 0, "flowd's log:\n\(flowd.log)")
        }
    }

    /// A follower's connection is suspended while it waits for the next event: the run past
    /// the drain timeout is cancelled, its stream ends with `cancelled`, and only then is the
    /// daemon stopped.
    @Test func anEventStreamOpenDuringSIGTERMOnARunPastTheDrainTimeoutEndsCancelledAndTheExitIsZero() async throws {
        let directory = try agents(delayMilliseconds: 30_000)
        defer { directory.remove() }
        let flowd = try await FlowdProcess.start(serve: arguments(directory, ["--drain-timeout", "1"]))
        let client = flowd.client
        try await reporting(flowd) {
            let started = try await client.post("/runs", json: #"{"input": "x", "story_id": "followed"}"#)
            #expect(started.status == 202)
            let runID = try #require(started.header("X-Run-ID"))
            try await eventually("the run running") { try await client.get("/runs/\(runID)").text.contains(#""status":"running""#) }

            let port = flowd.port
            let (events, connected) = AsyncStream.makeStream(of: Void.self)
            let stream = Task {
                try await TestHTTPClient.blocking { () throws -> (status: Int, body: String) in
                    let connection = try TestConnection(port: port)
                    try connection.send(TestHTTPClient.encode("GET", "/runs/\(runID)/events", headers: [("Accept", "text/event-stream")], body: nil))
                    let head = try connection.readHead()
                    connected.yield()
                    var body: [UInt8] = []
                    while let chunk = try connection.readChunk() { body += chunk }
                    return (head.status, String(decoding: body, as: UTF8.self))
                }
            }
            var waiting = events.makeAsyncIterator()
            _ = await waiting.next()
            let signalled = ContinuousClock.now
            flowd.signal(SIGTERM)

            let (status, body) = try await stream.value
            #expect(status == 200)
            #expect(body.contains("event: cancelled"), "\(body)")
            #expect(await flowd.waitForExit() == 0, "flowd's log:\n\(flowd.log)")
            #expect(ContinuousClock.now - signalled < .seconds(10))
            #expect(!flowd.log.contains("still suspended"))
        }
    }
}
