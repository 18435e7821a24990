import FlowdHTTP
import Foundation
import Logging
import Stores
import Synchronization

/// Every run of this process: admits and starts them, and lets clients follow, await and
/// cancel them. Live runs are kept here; finished ones are read from the run store.
///
/// Invariant: a run leaves the live set only after its final record is stored, so a reader
/// always finds it in one place or the other.
public final class RunService: Sendable {
    let executor: RunExecutor
    let store: any RunStore
    let maxRuns: Int
    let heartbeat: Duration
    let logger: Logger
    private let live = Mutex<[String: LiveRun]>([:])

    init(executor: RunExecutor, store: any RunStore, maxRuns: Int, heartbeat: Duration, logger: Logger) {
        self.executor = executor
        self.store = store
        self.maxRuns = maxRuns
        self.heartbeat = heartbeat
        self.logger = logger
    }

    /// Runs admitted and not yet finished, queued ones included.
    public var runsInFlight: Int { live.withLock { $0.count } }

    /// Admits and starts a run (503 beyond `--max-runs`). With `announce` its record is
    /// stored, durably, before this returns (its id is about to be handed out); otherwise
    /// the record is stored when the run ends.
    func start(_ request: RunRequest, announce: Bool) async throws(HTTPError) -> LiveRun {
        let run = LiveRun(record: RunRecord(runID: RunIDs.make(), flow: request.flow, storyID: request.storyID,
                                           status: .queued, createdAt: Date()))
        let admitted = live.withLock { runs -> Bool in
            guard runs.count < maxRuns else { return false }
            runs[run.runID] = run
            return true
        }
        guard admitted else { throw HTTPError.unavailable("Too many runs in flight") }
        if announce {
            do {
                try await store.create(run.record, durable: true)
            } catch {
                live.withLock { _ = $0.removeValue(forKey: run.runID) }
                throw HTTPError(HTTPStatus.internalError, "Storage failed: \(error)")
            }
        }
        run.attach(Task { await self.execute(run, request) })
        return run
    }

    private func execute(_ run: LiveRun, _ request: RunRequest) async {
        let outcome = await executor.execute(request, observer: run, onStart: { run.markRunning() })
        let (status, detail) = RunService.statusAndDetail(outcome)
        let (record, events) = run.conclude(outcome, detail: detail, status: status)
        do {
            try await store.finish(record, events: events)
        } catch {
            logger.error("run record not stored", metadata: ["run_id": "\(run.runID)", "error": "\(error)"])
        }
        live.withLock { _ = $0.removeValue(forKey: run.runID) }
        run.publishConclusion()
        logger.info("run", metadata: ["run_id": "\(run.runID)", "flow": "\(request.flow)", "story_id": "\(request.storyID)",
                                      "status": "\(record.status.rawValue)"])
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
