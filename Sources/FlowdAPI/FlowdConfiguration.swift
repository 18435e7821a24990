import Foundation
import Stores

/// Everything `flowd serve` (and `flowd run`) is configured with, built once by the CLI from
/// flags, then `FLOWD_*` environment variables, then defaults; nothing reads the environment later.
public struct FlowdConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var agentsDirectory = URL(fileURLWithPath: "agents")
    public var docsDirectory = URL(fileURLWithPath: "docs")
    public var dataDirectory = URL(fileURLWithPath: "data")
    /// Bytes; larger request bodies are 413.
    public var maxBody = 1_048_576
    /// Unicode scalars; a longer `input` is 422.
    public var maxInput = 65_536
    /// Runs in flight (queued ones included); beyond it new runs get 503.
    public var maxRuns = 10_000
    public var idleTimeoutSeconds = 30
    public var drainTimeoutSeconds = 30.0
    public var heartbeatSeconds = 10.0
    public var runRetentionHours = 168.0
    /// When set, every route but `/healthz`, `/readyz` and `GET /` needs `Authorization: Bearer <key>`.
    public var apiKey: String?
    public var llmBaseURL: String?
    public var llmAPIKey: String?
    public var llmModel: String?
    /// libmicrohttpd event-loop threads. Half the cores by default: the handlers run on
    /// Swift's cooperative pool (one thread per core), and on 2 cores one event loop gives
    /// the same throughput as two with a third of the p99 latency (scripts/bench trivial).
    public var httpThreads = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)

    /// Where memory, documents and run records live.
    public enum StoreKind: String, Sendable {
        /// The JSONL files of the data dir and the docs dir: embedded, one process.
        case jsonl
        /// A PostgreSQL database, shared by any number of replicas.
        case postgres
    }

    public var store = StoreKind.jsonl
    /// `postgres://…`, with `store == .postgres`.
    public var databaseURL: String?
    /// Seconds a replica's lease lasts without renewal; its runs are failed after that.
    public var leaseTTLSeconds = 15.0
    /// Most connections to the database of this process.
    public var databasePoolSize = 16
    /// What becomes of the runs an earlier process left unfinished (`--on-restart`).
    public var onRestart = RestartPolicy.resume

    public init() {}
}
