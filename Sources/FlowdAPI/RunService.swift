import FlowdHTTP
import Foundation
import Logging
import PostgresStores
import Stores
import FlowdSync

/// Every run of this process: admits and starts them, and lets clients follow, await and
/// cancel them. Live runs are kept here; finished ones are read from the run store.
///
/// Invariant: a run leaves the live set only after its final record is stored, so a reader
/// always finds it in one place or the other; its end is announced (terminal event) before
/// that, once its memory is committed.
public final class RunService: Sendable {
    let executor: RunExecutor
    let store: any RunStore
    let maxRuns: Int
    let heartbeat: Duration
    let logger: Logger
    let metrics: FlowdMetrics
    /// With `--store postgres`: story order, events and cancels across replicas.
    let cluster: PostgresCluster?
    private let live = Locked<[String: LiveRun]>([:])

    init(executor: RunExecutor, store: any RunStore, maxRuns: Int, heartbeat: Duration, cluster: PostgresCluster? = nil,
         metrics: FlowdMetrics, logger: Logger) {
        self.cluster = cluster
        self.metrics = metrics
        self.executor = executor
        self.store = store
        self.maxRuns = maxRuns
        self.heartbeat = heartbeat
        self.logger = logger
    }

    /// Runs admitted and not yet finished, queued ones included.
    public var runsInFlight: Int { live.withLock { $0.count } }

    /// Admits and starts a run in a task of its own (503 beyond `--max-runs`); its record
    /// is stored, durably, before this returns: its id is about to be handed out.
    func start(_ request: RunRequest) async throws(HTTPError) -> LiveRun {
        let run = try admit(request)
        do {
            try await store.create(run.record, durable: true)
        } catch {
            live.withLock { _ = $0.removeValue(forKey: run.runID) }
            throw RunService.storageError(error)
        }
        run.attach(Task { await self.execute(run, request) })
        return run
    }

    /// Admits a run and runs it on the calling task (`/run` without a stream: nobody learns
    /// its id before its end, so its record is stored when it ends).
    func runInline(_ request: RunRequest) async throws(HTTPError) -> (LiveRun, RunOutcome) {
        let run = try admit(request)
        if cluster != nil {
            // Across replicas a run arrives when its row is written: its place in the story's queue.
            do {
                try await store.create(run.record, durable: true)
            } catch {
                live.withLock { _ = $0.removeValue(forKey: run.runID) }
                throw RunService.storageError(error)
            }
        }
        run.beginInline()
        let outcome = await execute(run, request)
        run.endInline()
        return (run, outcome)
    }

    /// 503 when the database is unreachable (nothing was stored), 500 for other failures.
    static func storageError(_ error: StoreError) -> HTTPError {
        error.kind == .unavailable
            ? HTTPError.unavailable("Storage unavailable: \(error)")
            : HTTPError(HTTPStatus.internalError, "Storage failed: \(error)")
    }

    private func admit(_ request: RunRequest) throws(HTTPError) -> LiveRun {
        if let cluster, !cluster.database.isAvailable { throw HTTPError.unavailable("Database unreachable") }
        let runID = RunIDs.make()
        var onEvent: (@Sendable (RunEvent) -> Void)?
        if let cluster { onEvent = { event in cluster.publish(runID, event) } }
        let run = LiveRun(record: RunRecord(runID: runID, flow: request.flow, storyID: request.storyID,
                                           status: .queued, createdAt: Date()), metrics: metrics, onEvent: onEvent)
        let admitted = live.withLock { runs -> Bool in
            guard runs.count < maxRuns else { return false }
            runs[run.runID] = run
            return true
        }
        guard admitted else { throw HTTPError.unavailable("Too many runs in flight") }
        return run
    }

    @discardableResult
    private func execute(_ run: LiveRun, _ request: RunRequest) async -> RunOutcome {
        let started = ContinuousClock.now
        let executed: RunOutcome
        if let cluster, let refused = await waitForTurn(run, cluster) {
            executed = refused
        } else {
            executed = await executor.execute(request, observer: run, onStart: { run.markRunning() },
                                              claimCommit: { result in run.claimCommit(result: result) })
        }
        var (outcome, record, events) = run.conclude(executed)
        if case .succeeded = outcome {
            // The memory commit carried the finish: it is durable, and the run store has it.
        } else if await !storeFinish(record, events) {
            // Another replica's cancel came first (the shared store decided): the run ends cancelled.
            (record, events) = run.reconcludeCancelled()
            outcome = .cancelled
            _ = await storeFinish(record, events)
        }
        // The run stays live, and so readable here, until its record is stored.
        run.publishConclusion()
        live.withLock { _ = $0.removeValue(forKey: run.runID) }
        let duration = ContinuousClock.now - started
        metrics.run(flow: request.flow, outcome: record.status.rawValue, duration: duration)
        logger.info("run", metadata: ["run_id": "\(run.runID)", "flow": "\(request.flow)", "story_id": "\(request.storyID)",
                                      "status": "\(record.status.rawValue)", "duration_ms": "\(LogFormat.milliseconds(duration))"])
        return outcome
    }

    /// Stores the finish of a run that did not succeed. On a shared database, where an
    /// unfinished row holds its story's queue, a failure is retried every 500 ms until the
    /// database takes it (or the task is cancelled at exit). False, storing nothing, when the
    /// store refused it because another replica's cancel of the run came first.
    private func storeFinish(_ record: RunRecord, _ events: [RunEvent]) async -> Bool {
        var retrying = false
        while true {
            do {
                try await store.finish(record, events: events)
                if retrying { logger.info("run record stored after a retry", metadata: ["run_id": "\(record.runID)"]) }
                return true
            } catch where error.kind == .cancelled {
                return false
            } catch {
                if !retrying { logger.error("run record not stored", metadata: ["run_id": "\(record.runID)", "error": "\(error)"]) }
                guard cluster != nil, !Task.isCancelled else { return true }
                retrying = true
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Across replicas: waits for the run's turn in its story; nil when it came (the record
    /// now says `running`), else how the run ends without running.
    private func waitForTurn(_ run: LiveRun, _ cluster: PostgresCluster) async -> RunOutcome? {
        var running = run.record
        running.status = .running
        do {
            guard try await cluster.waitForTurn(running) else { return .cancelled }
            return nil
        } catch {
            return .storeFailed(error)
        }
    }

    func liveRun(_ runID: String) -> LiveRun? { live.withLock { $0[runID] } }

    /// The ids of the runs going on now.
    public var liveRunIDs: [String] { live.withLock { Array($0.keys) } }

    /// The record of a live or finished run.
    func record(_ runID: String) async throws -> RunRecord? {
        if let run = liveRun(runID) { return run.record }
        return try await store.record(runID)
    }

    /// Cancels every live run (the drain timeout).
    public func cancelAll() {
        for run in live.withLock({ Array($0.values) }) { run.cancel() }
    }

    /// Waits until no run is live, up to `timeout`; true when none is.
    public func waitForRuns(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while runsInFlight > 0 {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Prunes finished records older than `retention` now and then every hour, until cancelled.
    public func pruneRecords(retention: Duration) async {
        while !Task.isCancelled {
            do {
                let pruned = try await store.prune(finishedBefore: Date().addingTimeInterval(-retention.seconds))
                if pruned > 0 { logger.info("pruned run records", metadata: ["count": "\(pruned)"]) }
            } catch {
                logger.error("pruning run records failed: \(error)")
            }
            try? await Task.sleep(for: .seconds(3600))
        }
    }
}
