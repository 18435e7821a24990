import FlowdHTTP
import Foundation
import Logging
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
    private let live = Locked<[String: LiveRun]>([:])

    init(executor: RunExecutor, store: any RunStore, maxRuns: Int, heartbeat: Duration, metrics: FlowdMetrics, logger: Logger) {
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
            throw HTTPError(HTTPStatus.internalError, "Storage failed: \(error)")
        }
        run.attach(Task { await self.execute(run, request) })
        return run
    }

    /// Admits a run and runs it on the calling task (`/run` without a stream: nobody learns
    /// its id before its end, so its record is stored when it ends).
    func runInline(_ request: RunRequest) async throws(HTTPError) -> (LiveRun, RunOutcome) {
        let run = try admit(request)
        let outcome = await run.runInline { await self.execute(run, request) }
        return (run, outcome)
    }

    private func admit(_ request: RunRequest) throws(HTTPError) -> LiveRun {
        let run = LiveRun(record: RunRecord(runID: RunIDs.make(), flow: request.flow, storyID: request.storyID,
                                           status: .queued, createdAt: Date()), metrics: metrics)
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
        let outcome = await executor.execute(request, observer: run, onStart: { run.markRunning() })
        let (status, detail) = RunService.statusAndDetail(outcome)
        let (record, events) = run.conclude(outcome, detail: detail, status: status)
        // Followers get the terminal event at once (the memory commit is durable already);
        // the run stays live, and so readable here, until its record is stored.
        run.publishConclusion()
        do {
            try await store.finish(record, events: events)
        } catch {
            logger.error("run record not stored", metadata: ["run_id": "\(run.runID)", "error": "\(error)"])
        }
        live.withLock { _ = $0.removeValue(forKey: run.runID) }
        let duration = ContinuousClock.now - started
        metrics.run(flow: request.flow, outcome: record.status.rawValue, duration: duration)
        logger.info("run", metadata: ["run_id": "\(run.runID)", "flow": "\(request.flow)", "story_id": "\(request.storyID)",
                                      "status": "\(record.status.rawValue)", "duration_ms": "\(LogFormat.milliseconds(duration))"])
        return outcome
    }

    /// The status and detail a `/run` JSON answer gives an outcome (200 has no detail).
    static func statusAndDetail(_ outcome: RunOutcome) -> (Int, String?) {
        switch outcome {
        case .succeeded, .pendingDocuments: (HTTPStatus.ok, nil)
        case .failed(let detail): (HTTPStatus.internalError, "Flow execution failed: \(detail)")
        case .cancelled: (HTTPStatus.conflict, "Run cancelled")
        case .storeFailed(let detail): (HTTPStatus.internalError, "Storage failed: \(detail)")
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
