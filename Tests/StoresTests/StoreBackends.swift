import FlowdTesting
import Foundation
import Logging
import PostgresStores
import Stores

/// The two storage backends the store contract tests run against.
enum Backend: String, Sendable, CustomStringConvertible {
    case jsonl, postgres

    var description: String { rawValue }

    /// Both when PostgreSQL is installed here; else JSONL only, and a note on stderr says why.
    static let available: [Backend] = {
        if let reason = PostgresServer.unavailableReason {
            FileHandle.standardError.write(Data("note: store tests skip the postgres backend: \(reason)\n".utf8))
            return [.jsonl]
        }
        return [.jsonl, .postgres]
    }()
}

/// The three stores of one backend, opened together.
struct OpenedStores {
    let memory: any MemoryStore
    let documents: any DocumentStore
    let runs: any RunStore
    let close: @Sendable () async throws -> Void
}

/// Where one test's stores live: a temp dir (JSONL files, documents dir) or a database of
/// its own on the shared test server (postgres). Opening twice reopens the same data.
struct StoreFixture {
    let backend: Backend
    let dir = TempDirectory()
    let url: String?

    private init(_ backend: Backend, url: String?) {
        self.backend = backend
        self.url = url
    }

    /// A fresh place: an empty temp dir, or a new database on the shared test server.
    static func make(_ backend: Backend) async throws -> StoreFixture {
        switch backend {
        case .jsonl: StoreFixture(backend, url: nil)
        case .postgres: StoreFixture(backend, url: try await PostgresServer.shared().makeDatabase())
        }
    }

    func open() async throws -> OpenedStores {
        let logger = Logger(label: "test")
        switch backend {
        case .jsonl:
            let data = dir.url.appendingPathComponent("data")
            let memory = try await JSONLMemoryStore.open(directory: data, logger: logger)
            let runs = try await JSONLRunStore.open(directory: data, logger: logger)
            let documents = try FileDocumentStore(directory: dir.url.appendingPathComponent("docs"))
            return OpenedStores(memory: memory, documents: documents, runs: runs) {
                try await memory.close()
                try await runs.close()
            }
        case .postgres:
            let database = try await PostgresDatabase.open(url: url!, poolSize: 8, logger: logger)
            return OpenedStores(memory: PostgresMemoryStore(database: database), documents: PostgresDocumentStore(database: database),
                                runs: PostgresRunStore(database: database, owner: "test")) {
                await database.close()
            }
        }
    }

    /// The run backend of this place, as `flowd serve` opens it (`replica` names the process
    /// on a shared database; a second one is another replica).
    func openBackend(replica: String = "replica-a", onRestart: RestartPolicy = .resume) async throws -> any RunBackend {
        let logger = Logger(label: "test")
        switch backend {
        case .jsonl:
            return try await JSONLRunBackend.open(dataDirectory: dir.url.appendingPathComponent("data"),
                                                  docsDirectory: dir.url.appendingPathComponent("docs"), logger: logger,
                                                  onRestart: onRestart)
        case .postgres:
            return try await PostgresRunBackend.open(url: url!, poolSize: 8, leaseTTL: .seconds(15), replicaID: replica, onRestart: onRestart, logger: logger)
        }
    }

    func remove() { dir.remove() }
}
