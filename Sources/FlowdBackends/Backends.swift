import Agents
import AsyncHTTPClient
import FlowdAPI
import Foundation
import Logging
import PostgresStores
import Stores

/// The one place that knows the run backends by name: it opens the one the configuration
/// picks (`--store`). The API takes it as `any RunBackend`.
public enum Backends {
    /// Opens the stores of `configuration.store`: the data and docs directories (creating
    /// them), or the database (failing fast when it cannot be reached).
    public static func open(_ configuration: FlowdConfiguration, logger: Logger) async throws(StoreError) -> any RunBackend {
        switch configuration.store {
        case .jsonl:
            return try await JSONLRunBackend.open(dataDirectory: configuration.dataDirectory,
                                                  docsDirectory: configuration.docsDirectory, logger: logger,
                                                  onRestart: configuration.onRestart)
        case .postgres:
            return try await PostgresRunBackend.open(
                url: configuration.databaseURL ?? "", poolSize: configuration.databasePoolSize,
                leaseTTL: .milliseconds(Int64(configuration.leaseTTLSeconds * 1000)), replicaID: RunIDs.make(),
                onRestart: configuration.onRestart, logger: logger)
        }
    }
}

extension FlowdApp {
    /// Loads the agents, then opens the backend the configuration names. Agent problems
    /// throw `CatalogError` with every problem. `backendWork`: see `FlowdApp.BackendWork`.
    public static func open(configuration: FlowdConfiguration, logger: Logger,
                            backendWork: BackendWork = .app) async throws -> FlowdApp {
        let catalog = try AgentCatalog.load(directory: configuration.agentsDirectory, logger: logger)
        let backend = try await Backends.open(configuration, logger: logger)
        return FlowdApp(configuration: configuration, catalog: catalog, backend: backend,
                        httpClient: HTTPClient.shared, logger: logger, backendWork: backendWork)
    }
}
