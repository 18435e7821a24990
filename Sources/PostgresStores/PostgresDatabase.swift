import Foundation
import FlowdSync
import Logging
import PostgresNIO
import Stores

/// One flowd replica's way to its PostgreSQL database: a connection pool (postgres-nio's
/// `PostgresClient`, run in a task of its own), the schema migrated at open, and whether the
/// database is reachable now.
///
/// Invariants: `open` returns only once the database answered and the schema is at the
/// latest version; after `markUnavailable`, every store call fails at once with
/// `.unavailable` until `markAvailable` (the heartbeat decides), so no request waits for a
/// database that is gone.
public final class PostgresDatabase: Sendable {
    public let client: PostgresClient
    public let url: DatabaseURL
    let logger: Logger
    private let runTask: Locked<Task<Void, Never>?>
    private let reachable = Locked(true)

    /// The one NOTIFY channel: payloads `s:<story_id>` (a run of the story ended), `e:<run_id>`
    /// (the run has new events), `c:<run_id>` (cancel requested).
    public static let channel = "flowd"

    private init(client: PostgresClient, url: DatabaseURL, logger: Logger) {
        self.client = client
        self.url = url
        self.logger = logger
        runTask = Locked(nil)
    }

    /// Connects once (failing fast, with the reason, when the database cannot be reached),
    /// migrates the schema, then starts the pool of at most `poolSize` connections.
    public static func open(url text: String, poolSize: Int, logger: Logger,
                            connectTimeout: Duration = .seconds(5)) async throws(StoreError) -> PostgresDatabase {
        let url = try DatabaseURL(parsing: text)
        do {
            var configuration = try url.connectionConfiguration
            configuration.options.connectTimeout = .seconds(Int64(connectTimeout.components.seconds))
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                try await PostgresSchema.migrate(connection, logger: logger)
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            throw StoreError(.unavailable, "cannot use the database \(url): \(PostgresDatabase.describe(error))")
        }
        var configuration = url.clientConfiguration
        configuration.options.maximumConnections = max(2, poolSize)
        configuration.options.minimumConnections = 1
        configuration.options.connectTimeout = connectTimeout
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(10))
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let database = PostgresDatabase(client: client, url: url, logger: logger)
        // Queries wait for the pool's run loop; start it before the first one (no warning then).
        await withCheckedContinuation { started in
            database.runTask.withLock {
                $0 = Task {
                    started.resume()
                    await client.run()
                }
            }
        }
        await Task.yield()
        return database
    }

    /// Stops the pool; queries fail from then on. Waits for the pool's connections to close
    /// for at most `timeout` (the process may be about to exit).
    public func close(timeout: Duration = .seconds(5)) async {
        guard let task = runTask.withLock({ task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }) else { return }
        task.cancel()
        try? await bounded("closing the connection pool", timeout) { await task.value }
    }

    // MARK: Reachability

    public var isAvailable: Bool { reachable.withLock { $0 } }

    /// Called by whoever probes the database (the heartbeat); true when this changed it.
    @discardableResult
    public func setAvailable(_ available: Bool) -> Bool {
        reachable.withLock { value in
            defer { value = available }
            return value != available
        }
    }

    // MARK: Calls

    /// How long a call may wait for the database before it fails with `.unavailable`. A
    /// query caught by a server shutdown was seen never to be answered by the driver; no
    /// request may wait for it forever (nor hold a drain).
    public static let answerDeadline = Duration.seconds(10)

    /// A statement on a pooled connection (its rows, if any, read and dropped); its failure
    /// as a `StoreError`.
    func query(_ query: PostgresQuery, _ operation: String, deadline: Duration = answerDeadline) async throws(StoreError) {
        try checkAvailable(operation)
        let (client, logger) = (self.client, self.logger)
        try await bounded(operation, deadline) {
            for try await _ in try await client.query(query, logger: logger) {}
        }
    }

    /// All rows of a query, each read by `decode`; the failure as a `StoreError`.
    func rows<Row: Sendable>(_ query: PostgresQuery, _ operation: String, deadline: Duration = answerDeadline,
                             _ decode: @escaping @Sendable (PostgresRow) throws -> Row) async throws(StoreError) -> [Row] {
        try checkAvailable(operation)
        let (client, logger) = (self.client, self.logger)
        return try await bounded(operation, deadline) {
            var out: [Row] = []
            for try await row in try await client.query(query, logger: logger) {
                out.append(try decode(row))
            }
            return out
        }
    }

    /// `body` inside one transaction (BEGIN … COMMIT; ROLLBACK when it throws).
    func transaction<R: Sendable>(_ operation: String,
                                  _ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws(StoreError) -> R {
        try checkAvailable(operation)
        let (client, logger) = (self.client, self.logger)
        return try await bounded(operation, PostgresDatabase.answerDeadline) {
            try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        }
    }

    /// `body` in a task of its own, given up (and cancelled) after `deadline` or as soon as
    /// the caller is cancelled: the caller returns then whether or not the driver ever
    /// answers the abandoned query (after a database restart one was seen not to, which
    /// held a replica's shutdown forever). Its failure as a `StoreError`.
    func bounded<R: Sendable>(_ operation: String, _ deadline: Duration,
                              _ body: @escaping @Sendable () async throws -> R) async throws(StoreError) -> R {
        let outcome = Locked<CheckedContinuation<R, any Error>?>(nil)
        let tasks = Locked<[Task<Void, Never>]>([])
        let finish = { @Sendable (result: Result<R, any Error>) in
            outcome.withLock { continuation -> CheckedContinuation<R, any Error>? in
                defer { continuation = nil }
                return continuation
            }?.resume(with: result)
            for task in tasks.withLock({ $0 }) { task.cancel() }
        }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    outcome.withLock { $0 = continuation }
                    let work = Task {
                        do {
                            finish(.success(try await body()))
                        } catch {
                            finish(.failure(error))
                        }
                    }
                    let timer = Task {
                        try? await Task.sleep(for: deadline)
                        guard !Task.isCancelled else { return }
                        finish(.failure(StoreError(.unavailable, "\(operation): no answer from the database within \(deadline)")))
                    }
                    tasks.withLock { $0 = [work, timer] }
                    if outcome.withLock({ $0 == nil }) {
                        work.cancel()
                        timer.cancel()
                    } else if Task.isCancelled {  // before the handler below could see a continuation
                        finish(.failure(CancellationError()))
                    }
                }
            } onCancel: {
                finish(.failure(CancellationError()))
            }
        } catch {
            throw storeError(operation, error)
        }
    }

    /// Runs a write to its end even when the calling task is cancelled (a cancelled run still
    /// stores its record): postgres-nio would otherwise abandon the query half way.
    func uncancellable<R: Sendable>(_ body: @escaping @Sendable () async throws(StoreError) -> R) async throws(StoreError) -> R {
        let task = Task { () async throws(StoreError) -> R in try await body() }
        do {
            return try await task.value
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "\(error)")
        }
    }

    private func checkAvailable(_ operation: String) throws(StoreError) {
        guard isAvailable else { throw StoreError(.unavailable, "\(operation): the database is unreachable") }
    }

    func storeError(_ operation: String, _ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        // A transaction rolled back by flowd's own verdict (e.g. `.cancelled`) keeps it.
        if let error = error as? PostgresTransactionError, let verdict = error.closureError as? StoreError,
           error.rollbackError == nil {
            return verdict
        }
        return StoreError(PostgresDatabase.isConnectionFailure(error) ? .unavailable : .io,
                          "\(operation): \(PostgresDatabase.describe(error))")
    }

    /// True for errors that say the database could not be reached or went away.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].contains { $0.map(isConnectionFailure) ?? false }
        }
        if let error = error as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown: return true
            case .server:
                // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions.
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("57P") || state.hasPrefix("08")
            default: return false
            }
        }
        // The pool's own errors (its circuit breaker, its shutdown): the type is not exported.
        return "\(type(of: error))" == "ConnectionPoolError"
    }

    /// What went wrong, in words: the server's message, or the connection's failure.
    /// (`PSQLError`'s own description hides everything on purpose.)
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.beginError, error.commitError] {
                if let inner { return describe(inner) }
            }
            return "transaction failed"
        }
        if let error = error as? PSQLError {
            if let info = error.serverInfo {
                return [info[.message], info[.detail]].compactMap { $0 }.joined(separator: ": ")
            }
            return "\(error.code)" + (error.underlying.map { " (\($0))" } ?? "")
        }
        if let error = error as? StoreError { return error.description }
        return "\(error)"
    }
}
