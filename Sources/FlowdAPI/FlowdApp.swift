import Agents
import AsyncHTTPClient
import FlowdHTTP
import Foundation
import Logging
import PostgresStores
import Stores

/// The flowd application: loaded agents, the stores, the executor and the routes over them.
/// Built once by `flowd serve` (or `flowd run`) and shared by every request.
public final class FlowdApp: Sendable {
    public let configuration: FlowdConfiguration
    public let lifecycle = Lifecycle()
    public let catalog: AgentCatalog
    public let memory: any MemoryStore
    public let documents: any DocumentStore
    public let runStore: any RunStore
    public let executor: RunExecutor
    public let runs: RunService
    public let metrics = FlowdMetrics()
    /// With `--store postgres`: this replica among the others on the database.
    public let cluster: PostgresCluster?
    private let clusterTask: Task<Void, Never>?
    let logger: Logger

    public init(configuration: FlowdConfiguration, catalog: AgentCatalog, memory: any MemoryStore,
                documents: any DocumentStore, runStore: any RunStore, cluster: PostgresCluster? = nil,
                httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.runStore = runStore
        self.catalog = catalog
        self.memory = memory
        self.documents = documents
        self.logger = logger
        let llm = LLMConfiguration(baseURL: configuration.llmBaseURL, apiKey: configuration.llmAPIKey, defaultModel: configuration.llmModel)
        let runner = FlowRunner(catalog: catalog, httpClient: httpClient, llm: llm, logger: logger)
        executor = RunExecutor(catalog: catalog, runner: runner, memory: memory, documents: documents,
                               metrics: metrics, logger: logger)
        runs = RunService(executor: executor, store: runStore, maxRuns: configuration.maxRuns,
                          heartbeat: .milliseconds(Int64(configuration.heartbeatSeconds * 1000)),
                          cluster: cluster, metrics: metrics, logger: logger)
        self.cluster = cluster
        let runs = self.runs
        clusterTask = cluster.map { cluster in Task { await cluster.run(cancel: { runs.liveRun($0)?.cancel() }) } }
    }

    /// Loads the agents and opens the stores the configuration names (creating the docs
    /// and data directories). Agent problems throw `CatalogError` with every problem.
    public static func open(configuration: FlowdConfiguration, logger: Logger) async throws -> FlowdApp {
        let catalog = try AgentCatalog.load(directory: configuration.agentsDirectory, logger: logger)
        if configuration.store == .postgres {
            let database = try await PostgresDatabase.open(url: configuration.databaseURL ?? "", poolSize: configuration.databasePoolSize,
                                                           logger: logger)
            let cluster = PostgresCluster(database: database, replicaID: RunIDs.make(),
                                          leaseTTL: .milliseconds(Int64(configuration.leaseTTLSeconds * 1000)), logger: logger)
            try await cluster.register()
            logger.info("store: postgres", metadata: ["database": "\(database.url)", "replica": "\(cluster.replicaID)"])
            return FlowdApp(configuration: configuration, catalog: catalog, memory: PostgresMemoryStore(database: database),
                            documents: PostgresDocumentStore(database: database), runStore: cluster.runs, cluster: cluster,
                            httpClient: HTTPClient.shared, logger: logger)
        }
        let documents = try FileDocumentStore(directory: configuration.docsDirectory)
        // Opened together: a run's memory commit carries its finish to the run store.
        let (memory, runStore) = try await JSONLStores.open(directory: configuration.dataDirectory, logger: logger)
        return FlowdApp(configuration: configuration, catalog: catalog, memory: memory, documents: documents,
                        runStore: runStore, httpClient: HTTPClient.shared, logger: logger)
    }

    /// Every route of the API.
    public func makeRouter() -> Router {
        var router = Router()
        router.get("/healthz") { _ in Responses.healthy }
        router.get("/readyz") { [self] _ in readiness() }
        let openAPI = HTTPResponse.json(HTTPStatus.ok, OpenAPIDocument.make(
            flowNames: catalog.flowNames, maxInput: configuration.maxInput, apiKeyRequired: configuration.apiKey != nil))
        router.get("/openapi.json") { _ in openAPI }
        router.get("/metrics") { [self] _ in
            HTTPResponse(status: HTTPStatus.ok, headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]),
                         body: .bytes(metrics.render(runsInFlight: runs.runsInFlight)))
        }
        RunRoutes(catalog: catalog, runs: runs, lifecycle: lifecycle, maxInput: configuration.maxInput).register(on: &router)
        DocumentRoutes(documents: documents).register(on: &router)
        MemoryRoutes(memory: memory).register(on: &router)
        ConsoleRoutes().register(on: &router)
        return router
    }

    /// The HTTP server for this app, not yet started.
    public func makeServer() -> HTTPServer {
        var http = HTTPServerConfiguration()
        http.host = configuration.host
        http.port = configuration.port
        http.maxBodyBytes = configuration.maxBody
        http.idleTimeoutSeconds = configuration.idleTimeoutSeconds
        http.threads = configuration.httpThreads
        let metrics = self.metrics
        let logger = self.logger
        return HTTPServer(
            configuration: http, router: makeRouter(), logger: logger,
            gate: configuration.apiKey.map { APIKeyGate(key: $0).check },
            observer: { head, route, status, headers, duration in
                let route = route ?? "unmatched"
                metrics.request(method: head.method, route: route, status: status, duration: duration)
                logger.info("request", metadata: [
                    "method": "\(head.method)", "route": "\(route)", "status": "\(status)",
                    "latency_ms": "\(LogFormat.milliseconds(duration))", "run_id": "\(headers["X-Run-ID"] ?? "-")",
                ])
            })
    }

    /// Everything acknowledged is on disk already; this waits for what is still being written.
    public func shutdown() async {
        do {
            try await memory.flush()
            try await runStore.flush()
        } catch {
            logger.error("flush at shutdown failed: \(error)")
        }
        if let cluster, let clusterTask {
            clusterTask.cancel()
            await clusterTask.value
            await cluster.database.close()
        }
    }

    private func readiness() -> HTTPResponse {
        if lifecycle.isDraining {
            return .detail(HTTPStatus.unavailable, "Draining", headers: Responses.retryAfter)
        }
        if let cluster {
            guard cluster.database.isAvailable else {
                return .detail(HTTPStatus.unavailable, "Database unreachable", headers: Responses.retryAfter)
            }
            return Responses.ready
        }
        guard access(configuration.dataDirectory.path, W_OK) == 0 else {
            return .detail(HTTPStatus.unavailable, "Data directory is not writable", headers: Responses.retryAfter)
        }
        return Responses.ready
    }
}

/// Bodies that never change, serialised once.
enum Responses {
    static let healthy = HTTPResponse.json(HTTPStatus.ok, Array(#"{"status":"ok"}"#.utf8))
    static let ready = HTTPResponse.json(HTTPStatus.ok, Array(#"{"status":"ready"}"#.utf8))
    static let retryAfter = HTTPHeaders([("Retry-After", "1")])
}

/// Cheap number formatting for log lines (a Double's description is slow on a hot path).
enum LogFormat {
    /// `1.234` (milliseconds, three decimals).
    static func milliseconds(_ duration: Duration) -> String {
        let micros = max(0, duration.nanoseconds / 1_000)
        let fraction = micros % 1_000
        return "\(micros / 1_000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }
}
