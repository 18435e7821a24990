import Foundation
import Logging
import Stores

/// The backend of replicas sharing one PostgreSQL database: this replica's `PostgresCluster`
/// (story order, leases, live events, cancels across replicas) and the tables' stores.
///
/// One durable commit per run besides its journal: the arrival, the turn and the live events
/// are committed without waiting for the WAL to reach the disk (no answer depends on them
/// surviving a database crash, which would also end the run); a journal write and a run's
/// end are synchronous statements (`PostgresMemoryStore.commit(_:finishing:owner:)` for a
/// success). Only the run's owner writes its turn, journal or end: a run another replica took
/// over (this one's lease expired) gets nothing more from this one. An idempotency key is
/// unique among all replicas' runs (a unique index). See docs/architecture.md.
public struct PostgresRunBackend: RunBackend {
    public let cluster: PostgresCluster
    let memoryStore: PostgresMemoryStore
    let files: PostgresDocumentStore
    let logger: Logger

    public var memory: any MemoryStore { memoryStore }
    public var documents: any DocumentStore { files }
    var database: PostgresDatabase { cluster.database }

    /// How often a run's end is tried again while the database is away.
    static let finishRetry = Duration.milliseconds(500)

    /// Connects (failing fast when the database cannot be reached), migrates the schema and
    /// takes this replica's lease. `onRestart` says what becomes of the runs of a replica
    /// whose lease expired: resumed here, or failed.
    public static func open(url: String, poolSize: Int, leaseTTL: Duration, replicaID: String,
                            onRestart: RestartPolicy = .resume, logger: Logger) async throws(StoreError) -> PostgresRunBackend {
        let database = try await PostgresDatabase.open(url: url, poolSize: poolSize, logger: logger)
        let cluster = PostgresCluster(database: database, replicaID: replicaID, leaseTTL: leaseTTL, onRestart: onRestart,
                                      logger: logger)
        do {
            try await cluster.register()
        } catch {
            await database.close()
            throw error
        }
        logger.info("store: postgres", metadata: ["database": "\(database.url)", "replica": "\(replicaID)"])
        return PostgresRunBackend(cluster: cluster, memoryStore: PostgresMemoryStore(database: database),
                                  files: PostgresDocumentStore(database: database), logger: logger)
    }

    public var isAvailable: Bool { database.isAvailable }

    public func readinessProblem() -> String? {
        database.isAvailable ? nil : "Database unreachable"
    }

    public func arrive(_ record: RunRecord, durable: Bool) async throws(StoreError) -> Arrival {
        try await cluster.runs.arrive(record, durable: durable)
    }

    public func runID(forKey key: String) async throws(StoreError) -> String? {
        try await cluster.runs.runID(forKey: key)
    }

    public func journal(_ record: RunRecord, steps: [RunStep], first: Int, events: [RunEvent]) async throws(StoreError) {
        try await cluster.runs.journal(record, steps: steps, first: first, events: events)
    }

    public func steps(of runID: String) async throws(StoreError) -> [RunStep]? {
        try await cluster.runs.steps(of: runID)
    }

    /// None: a database's lost runs are taken over as their replica's lease expires (`run`).
    public func takeOverInterrupted() async throws(StoreError) -> [InterruptedRun] { [] }

    public func waitForTurn(_ record: RunRecord, announce: Bool) async throws(StoreError) -> Bool {
        var running = record
        running.status = .running
        return try await cluster.waitForTurn(running, announce: announce)
    }

    public func publish(_ runID: String, _ event: RunEvent) {
        cluster.publish(runID, event)
    }

    public func commit(_ memory: MemoryTransaction, finish: RunFinish) async throws(StoreError) {
        try await memoryStore.commit(memory, finishing: finish, owner: cluster.replicaID)
    }

    /// The story's later runs wait until this row is finished: a failure is retried every
    /// 500 ms until the database takes it, or the task is cancelled (at exit; the lease's
    /// expiry then fails the run).
    public func finish(_ finish: RunFinish) async throws(StoreError) {
        var retrying = false
        while true {
            do {
                try await cluster.runs.finish(finish.record, events: finish.events, steps: finish.steps)
                if retrying { logger.info("run record stored after a retry", metadata: ["run_id": "\(finish.record.runID)"]) }
                return
            } catch where error.kind == .cancelled {
                throw error
            } catch {
                if !retrying { logger.error("run record not stored; retrying", metadata: ["run_id": "\(finish.record.runID)", "error": "\(error)"]) }
                guard !Task.isCancelled else { throw error }
                retrying = true
                try? await Task.sleep(for: PostgresRunBackend.finishRetry)
            }
        }
    }

    public func record(_ runID: String) async throws(StoreError) -> RunRecord? {
        try await cluster.runs.record(runID)
    }

    public func list(_ query: RunQuery) async throws(StoreError) -> RunPage {
        try await cluster.runs.list(query)
    }

    public func storedEvents(_ runID: String, after: Int) async throws(StoreError) -> StoredEvents? {
        guard let (events, finished) = try await cluster.runs.eventsSoFar(runID, after: after) else { return nil }
        return finished ? .finished(events) : .running
    }

    public func follow(_ runID: String, after: Int, send: @escaping @Sendable (RunEvent) -> Void,
                       isClosed: @escaping @Sendable () -> Bool) async {
        await cluster.follow(runID, after: after, send: send, isClosed: isClosed)
    }

    public func requestCancel(_ runID: String) async throws(StoreError) -> RunRecord? {
        try await cluster.requestCancel(runID)
    }

    public func run(cancel: @escaping @Sendable (String) -> Void, resume: @escaping @Sendable ([InterruptedRun]) -> Void) async {
        await cluster.run(cancel: cancel, resume: resume)
    }

    public func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int {
        try await cluster.runs.prune(finishedBefore: cutoff)
    }

    public func close() async throws(StoreError) {
        await database.close()
    }
}
