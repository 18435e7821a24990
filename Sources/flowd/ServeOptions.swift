import ArgumentParser
import FlowdAPI
import Stores
import Foundation

/// Options shared by the commands that touch the agents, documents and data.
struct StorageOptions: ParsableArguments {
    @Option(help: "Directory of agent YAML files and flows.yaml (FLOWD_AGENTS).")
    var agents: String?
    @Option(help: "Directory of documents, <id>.md (FLOWD_DOCS).")
    var docs: String?
    @Option(help: "Directory of memory and run records (FLOWD_DATA).")
    var data: String?
    @Option(help: "Where memory, documents and run records live: jsonl (files of --data and --docs) or postgres (FLOWD_STORE). Default jsonl.")
    var store: String?
    @Option(name: .customLong("database-url"), help: "postgres://user:password@host:port/database, with --store postgres (FLOWD_DATABASE_URL).")
    var databaseURL: String?
    @Option(name: .customLong("lease-ttl"), help: "Seconds after which the runs of a replica that stopped renewing its lease are taken over (or failed, with --on-restart fail), with --store postgres (FLOWD_LEASE_TTL). Default 15.")
    var leaseTTL: Double?
    @Option(name: .customLong("db-pool-size"), help: "Most connections to the database per process, with --store postgres (FLOWD_DB_POOL_SIZE). Default 16.")
    var dbPoolSize: Int?

    func apply(to configuration: inout FlowdConfiguration, environment: Environment) throws {
        configuration.agentsDirectory = URL(fileURLWithPath: environment.value(agents, "FLOWD_AGENTS") ?? "agents")
        configuration.docsDirectory = URL(fileURLWithPath: environment.value(docs, "FLOWD_DOCS") ?? "docs")
        configuration.dataDirectory = URL(fileURLWithPath: environment.value(data, "FLOWD_DATA") ?? "data")
        let storeName = environment.value(store, "FLOWD_STORE") ?? "jsonl"
        guard let kind = FlowdConfiguration.StoreKind(rawValue: storeName) else {
            throw ValidationError("--store must be jsonl or postgres, not \(storeName)")
        }
        configuration.store = kind
        configuration.databaseURL = environment.value(databaseURL, "FLOWD_DATABASE_URL").flatMap { $0.isEmpty ? nil : $0 }
        if kind == .postgres, configuration.databaseURL == nil {
            throw ValidationError("--store postgres needs --database-url (or FLOWD_DATABASE_URL)")
        }
        let ttl = try environment.seconds(leaseTTL, "FLOWD_LEASE_TTL") ?? configuration.leaseTTLSeconds
        guard ttl >= 1 else { throw ValidationError("--lease-ttl must be at least 1 second, not \(ttl)") }
        configuration.leaseTTLSeconds = ttl
        configuration.databasePoolSize = try environment.number(dbPoolSize, "FLOWD_DB_POOL_SIZE", in: 2...1000) ?? configuration.databasePoolSize
    }
}

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

/// The process environment, read once; a flag given on the command line wins over it.
struct Environment {
    var variables: [String: String]

    static var current: Environment { Environment(variables: ProcessInfo.processInfo.environment) }

    func value(_ flag: String?, _ name: String) -> String? {
        flag ?? variables[name]
    }

    func number(_ flag: Int?, _ name: String, in range: ClosedRange<Int>) throws -> Int? {
        let value: Int
        if let flag {
            value = flag
        } else if let text = variables[name] {
            guard let parsed = Int(text) else { throw ValidationError("\(name)=\(text) is not a whole number") }
            value = parsed
        } else {
            return nil
        }
        guard range.contains(value) else { throw ValidationError("\(name.flagName) must be in \(range.lowerBound)...\(range.upperBound), not \(value)") }
        return value
    }

    func seconds(_ flag: Double?, _ name: String) throws -> Double? {
        let value: Double
        if let flag {
            value = flag
        } else if let text = variables[name] {
            guard let parsed = Double(text) else { throw ValidationError("\(name)=\(text) is not a number") }
            value = parsed
        } else {
            return nil
        }
        guard value.isFinite, value >= 0 else { throw ValidationError("\(name.flagName) must be a number of at least 0, not \(value)") }
        return value
    }
}

extension String {
    /// `FLOWD_MAX_BODY` → `--max-body`.
    var flagName: String {
        "--" + dropFirst("FLOWD_".count).lowercased().replacingOccurrences(of: "_", with: "-")
    }
}
