import FlowdJSON
import FlowdTesting
import Foundation
import Stores
import Testing

@Suite("Operations: API key, metrics, logs, probes")
struct OperationsTests {
    @Test func withAnAPIKeyEveryRouteButTheProbesAndTheConsoleNeedsTheBearerToken() async throws {
        try await withFlowd(Fixtures.basic, configure: { $0.apiKey = "s3cret" }) { flowd in
            for path in ["/flows", "/docs", "/metrics", "/openapi.json", "/runs/x", "/no/such/route"] {
                let response = try await flowd.client.get(path)
                #expect(response.status == 401, "\(path)")
                #expect(response.header("WWW-Authenticate") == "Bearer")
                #expect(response.json["detail"]?.stringValue != nil)
            }
            let wrongMethod = try await flowd.client.request("DELETE", "/flows")
            #expect(wrongMethod.status == 401)
            let wrongKey = try await flowd.client.get("/flows", headers: [("Authorization", "Bearer s3cre")])
            #expect(wrongKey.status == 401)
            let right = try await flowd.client.get("/flows", headers: [("Authorization", "Bearer s3cret")])
            #expect(right.status == 200)
            let run = try await flowd.client.post("/run", json: #"{"input": "x", "story_id": "k"}"#, headers: [("Authorization", "Bearer s3cret")])
            #expect(run.status == 200)
            let r1 = try await flowd.client.get("/healthz")
            #expect(r1.status == 200)
            let r2 = try await flowd.client.get("/readyz")
            #expect(r2.status == 200)
            let console = try await flowd.client.get("/")
            #expect(console.status != 401)

            // A refused request is counted under the route it asked for; an unknown path as unmatched.
            let metrics = try await flowd.client.get("/metrics", headers: [("Authorization", "Bearer s3cret")])
            let samples = try PrometheusText.parse(metrics.text)
            func refused(_ route: String) -> Double {
                samples.filter { $0.name == "flowd_http_requests_total" && $0.labels["route"] == route && $0.labels["status"] == "401" }
                    .reduce(0) { $0 + $1.value }  // over methods
            }
            #expect(refused("/flows") == 2)  // GET without a key, GET with a wrong key
            #expect(refused("/runs/{id}") == 1)
            #expect(refused("unmatched") == 2)  // /no/such/route, and DELETE /flows (no such route for DELETE)
        }
    }

    @Test func metricsAreValidPrometheusTextWithRunsPerFlowAndLatencyHistograms() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            _ = try await flowd.run(#"{"input": "x", "story_id": "m1"}"#)
            _ = try await flowd.run(#"{"flow": "failing", "input": "x", "story_id": "m2"}"#)
            _ = try await flowd.client.get("/healthz")
            let response = try await flowd.client.get("/metrics")
            #expect(response.status == 200)
            #expect(response.header("Content-Type")?.hasPrefix("text/plain") == true)
            let samples = try PrometheusText.parse(response.text)
            #expect(samples.contains { $0.name == "flowd_runs_total" && $0.labels["flow"] == "default" && $0.labels["outcome"] == "succeeded" && $0.value == 1 })
            #expect(samples.contains { $0.name == "flowd_runs_total" && $0.labels["flow"] == "failing" && $0.labels["outcome"] == "failed" && $0.value == 1 })
            #expect(samples.contains { $0.name == "flowd_run_duration_seconds_bucket" && $0.labels["flow"] == "default" && $0.labels["le"] == "+Inf" })
            #expect(samples.contains { $0.name == "flowd_http_requests_total" && $0.labels["route"] == "/run" && $0.labels["status"] == "200" })
            #expect(samples.contains { $0.name == "flowd_http_request_duration_seconds_count" && $0.labels["route"] == "/healthz" })
            #expect(samples.contains { $0.name == "flowd_agent_duration_seconds_count" && $0.labels["agent"] == "analyst" })
            #expect(samples.contains { $0.name == "flowd_memory_commit_duration_seconds_count" && $0.value >= 1 })
            #expect(samples.contains { $0.name == "flowd_runs_in_flight" && $0.value == 0 })
        }
    }

    @Test func jsonLogsHaveOneLinePerRequestWithItsRunIDAndOnePerRun() async throws {
        let directory = try TempDirectory()
        defer { directory.remove() }
        try directory.write("agents/analyst.yaml", "kind: template\nprompt: \"a {{input}}\"\n")
        try directory.write("agents/flows.yaml", "default: [analyst]\n")
        let flowd = try await FlowdProcess.start(
            serve: ["--agents", directory.path("agents").path, "--docs", directory.path("docs").path, "--data", directory.path("data").path],
            environment: ["FLOWD_LOG_FORMAT": "json"])
        let run = try await flowd.client.post("/run", json: #"{"input": "x", "story_id": "logged"}"#)
        let runID = try #require(run.json["run_id"]?.stringValue)
        #expect(run.header("X-Run-ID") == runID)
        flowd.signal(SIGTERM)
        #expect(await flowd.waitForExit() == 0)
        let lines = flowd.log.split(separator: "\n").compactMap {
            try? JSONValue.parse(String($0))
        }
        #expect(lines.count == flowd.log.split(separator: "\n").count, "every log line is JSON")
        let request = lines.first { $0["message"]?.stringValue == "request" && $0["route"]?.stringValue == "/run" }
        #expect(request?["method"]?.stringValue == "POST")
        #expect(request?["status"]?.stringValue == "200")
        #expect(request?["run_id"]?.stringValue == runID)
        #expect(request?["latency_ms"] != nil)
        #expect(request?["level"]?.stringValue == "info")
        let runLine = lines.first { $0["message"]?.stringValue == "run" }
        #expect(runLine?["run_id"]?.stringValue == runID)
        #expect(runLine?["status"]?.stringValue == "succeeded")
    }
}

/// A strict enough reader of the Prometheus text format (0.0.4) for tests: every line is a
/// comment (`# HELP`/`# TYPE`) or `name{labels} value`.
enum PrometheusText {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    static func parse(_ text: String) throws -> [Sample] {
        var samples: [Sample] = []
        for line in text.split(separator: "\n") where !line.isEmpty {
            if line.hasPrefix("#") {
                guard line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") else { throw TestClientError("bad comment: \(line)") }
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...].replacingOccurrences(of: "+Inf", with: "inf")) else {
                throw TestClientError("bad sample: \(line)")
            }
            let series = line[..<space]
            var name = String(series)
            var labels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                guard series.hasSuffix("}") else { throw TestClientError("bad labels: \(line)") }
                name = String(series[..<brace])
                let body = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                for pair in body.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[1].hasPrefix("\""), parts[1].hasSuffix("\"") else { throw TestClientError("bad label: \(pair)") }
                    labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
                }
            }
            guard name.range(of: "^[a-zA-Z_:][a-zA-Z0-9_:]*$", options: .regularExpression) != nil else { throw TestClientError("bad name: \(name)") }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
        return samples
    }
}
