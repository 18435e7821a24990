import Agents
import AsyncHTTPClient
import FlowdHTTP
import Foundation
import Logging
import Stores

/// The flowd application: loaded agents, the run backend, the executor and the routes over
/// them. Built once by `flowd serve` (or `flowd run`) and shared by every request; the
/// caller picks the backend (`FlowdBackends`), which nothing here names.
public final class FlowdApp: Sendable {
    public let configuration: FlowdConfiguration
    public let lifecycle = Lifecycle()
    public let catalog: AgentCatalog
    public let backend: any RunBackend
    public let executor: RunExecutor
    public let runs: RunService
    public let metrics = FlowdMetrics()
    /// The backend's own work (leases, notifications) when the app runs it itself, until shutdown.
    private let backendTask: Task<Void, Never>?
    let logger: Logger

    /// Who runs the backend's own work (`RunBackend.run`: leases, notifications, cancels
    /// across replicas) while the app is open.
    public enum BackendWork: Sendable {
        /// The app, in a task of its own from `init` to `shutdown` (tests, `flowd run`).
        case app
        /// The caller, through `runBackendWork()`: `flowd serve` runs it as a service of its
        /// group, so that it stops in the shutdown order (after the HTTP server, before the stores).
        case caller
    }

    public init(configuration: FlowdConfiguration, catalog: AgentCatalog, backend: any RunBackend,
                httpClient: HTTPClient, logger: Logger, backendWork: BackendWork = .app) {
        self.configuration = configuration
        self.catalog = catalog
        self.backend = backend
        self.logger = logger
        let llm = LLMConfiguration(baseURL: configuration.llmBaseURL, apiKey: configuration.llmAPIKey, defaultModel: configuration.llmModel)
        let runner = FlowRunner(catalog: catalog, httpClient: httpClient, llm: llm, logger: logger)
        executor = RunExecutor(catalog: catalog, runner: runner, memory: backend.memory, documents: backend.documents,
                               logger: logger)
        let runs = RunService(executor: executor, backend: backend, maxRuns: configuration.maxRuns,
                              heartbeat: .milliseconds(Int64(configuration.heartbeatSeconds * 1000)),
                              metrics: metrics, logger: logger)
        self.runs = runs
        switch backendWork {
        case .app: backendTask = Task { await FlowdApp.runBackendWork(backend, runs: runs) }
        case .caller: backendTask = nil
        }
    }

    /// The backend's own work, until the calling task is cancelled (`BackendWork.caller`).
    public func runBackendWork() async {
        await FlowdApp.runBackendWork(backend, runs: runs)
    }

    private static func runBackendWork(_ backend: any RunBackend, runs: RunService) async {
        await backend.run(cancel: { runs.liveRun($0)?.cancel() },
                          resume: { taken in Task { await runs.resume(taken) } })
    }

    public var memory: any MemoryStore { backend.memory }
    public var documents: any DocumentStore { backend.documents }

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
        backendTask?.cancel()
        await backendTask?.value
        do {
            try await backend.close()
        } catch {
            logger.error("flush at shutdown failed: \(error)")
        }
    }

    private func readiness() -> HTTPResponse {
        if lifecycle.isDraining {
            return .detail(HTTPStatus.unavailable, "Draining", headers: Responses.retryAfter)
        }
        if let problem = backend.readinessProblem() {
            return .detail(HTTPStatus.unavailable, problem, headers: Responses.retryAfter)
        }
        return Responses.ready
    }
}
