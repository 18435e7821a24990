import ArgumentParser
import FlowdAPI
import Stores
import Foundation

/// The flags of `serve`; each one falls back to its `FLOWD_*` environment variable.
struct ServeOptions: ParsableArguments {
    @Option(help: "Address to listen on (FLOWD_HOST). Default 127.0.0.1.")
    var host: String?
    @Option(help: "Port; 0 picks a free one (FLOWD_PORT). Default 8080.")
    var port: Int?
    @Option(name: .customLong("max-body"), help: "Largest request body in bytes (FLOWD_MAX_BODY). Default 1048576.")
    var maxBody: Int?
    @Option(name: .customLong("max-input"), help: "Longest input in characters (FLOWD_MAX_INPUT). Default 65536.")
    var maxInput: Int?
    @Option(name: .customLong("max-runs"), help: "Runs in flight before 503 (FLOWD_MAX_RUNS). Default 10000.")
    var maxRuns: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds before an idle connection is closed (FLOWD_IDLE_TIMEOUT). Default 30.")
    var idleTimeout: Int?
    @Option(name: .customLong("drain-timeout"), help: "Seconds runs may finish on shutdown (FLOWD_DRAIN_TIMEOUT). Default 30.")
    var drainTimeout: Double?
    @Option(help: "Seconds between SSE heartbeat comments (FLOWD_HEARTBEAT). Default 10.")
    var heartbeat: Double?
    @Option(name: .customLong("run-retention"), help: "Hours finished run records are kept (FLOWD_RUN_RETENTION). Default 168.")
    var runRetention: Double?

    @Option(name: .customLong("on-restart"), help: "What becomes of the runs an earlier process left queued or running: resume (go on from the last journaled step) or fail (FLOWD_ON_RESTART). Default resume.")
    var onRestart: String?

    @Option(name: .customLong("http-threads"), help: "libmicrohttpd event-loop threads (FLOWD_HTTP_THREADS). Default: half the cores, at least 1.")
    var httpThreads: Int?

    func apply(to c: inout FlowdConfiguration, environment env: Environment) throws {
        c.host = env.value(host, "FLOWD_HOST") ?? c.host
        c.port = try env.number(port, "FLOWD_PORT", in: 0...65535) ?? c.port
        c.maxBody = try env.number(maxBody, "FLOWD_MAX_BODY", in: 0...Int(Int32.max)) ?? c.maxBody
        c.maxInput = try env.number(maxInput, "FLOWD_MAX_INPUT", in: 0...Int(Int32.max)) ?? c.maxInput
        c.maxRuns = try env.number(maxRuns, "FLOWD_MAX_RUNS", in: 1...10_000_000) ?? c.maxRuns
        c.idleTimeoutSeconds = try env.number(idleTimeout, "FLOWD_IDLE_TIMEOUT", in: 0...86_400) ?? c.idleTimeoutSeconds
        c.drainTimeoutSeconds = try env.seconds(drainTimeout, "FLOWD_DRAIN_TIMEOUT") ?? c.drainTimeoutSeconds
        c.heartbeatSeconds = try env.seconds(heartbeat, "FLOWD_HEARTBEAT") ?? c.heartbeatSeconds
        c.runRetentionHours = try env.seconds(runRetention, "FLOWD_RUN_RETENTION") ?? c.runRetentionHours
        c.httpThreads = try env.number(httpThreads, "FLOWD_HTTP_THREADS", in: 1...256) ?? c.httpThreads
        if let policy = env.value(onRestart, "FLOWD_ON_RESTART") {
            guard let parsed = RestartPolicy(rawValue: policy) else { throw ValidationError("--on-restart must be resume or fail, not \(policy)") }
            c.onRestart = parsed
        }
        c.apiKey = env.variables["FLOWD_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        c.llmBaseURL = env.variables["FLOWD_LLM_BASE_URL"]
        c.llmAPIKey = env.variables["FLOWD_LLM_API_KEY"]
        c.llmModel = env.variables["FLOWD_LLM_MODEL"]
    }
}
