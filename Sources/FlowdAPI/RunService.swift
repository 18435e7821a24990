import Agents
import FlowdHTTP
import Foundation
import Logging
import Stores
import FlowdSync

/// Every run of this process, and the one owner of each run's life: admits and starts
/// them, runs them in their story's turn, commits or stores their end through the backend,
/// and lets clients follow, await and cancel them. Live runs are kept here; finished ones,
/// and those of other processes, are read from the backend.
///
/// Invariant: a run leaves the live set only after its final record is stored, so a reader
/// always finds it in one place or the other; its end is announced (terminal event) before
/// that, once its memory is committed.
public final class RunService: Sendable {
    let executor: RunExecutor
    let backend: any RunBackend
    let maxRuns: Int
    let heartbeat: Duration
    let logger: Logger
    let metrics: FlowdMetrics
    private let live = Locked<[String: LiveRun]>([:])

    init(executor: RunExecutor, backend: any RunBackend, maxRuns: Int, heartbeat: Duration,
         metrics: FlowdMetrics, logger: Logger) {
        self.executor = executor
        self.backend = backend
        self.maxRuns = maxRuns
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.logger = logger
    }

    /// Runs admitted and not yet finished, queued ones included.
    public var runsInFlight: Int { live.withLock { $0.count } }

    /// Admits and starts a run in a task of its own (503 beyond `--max-runs`); it has
    /// arrived, durably, before this returns: its id is about to be handed out.
    func start(_ request: RunRequest) async throws -> LiveRun {
        let run = try admit(request, visible: true)
        try await arrive(run, durable: true)
        run.attach(Task { await self.execute(run, request, visible: true) })
        return run
    }

    /// Admits a run and runs it on the calling task (`/run` without a stream, `flowd run`):
    /// nobody learns its id before its end, so its arrival need not be durable. `progress`
    /// hears of its agents too.
    public func runInline(_ request: RunRequest, progress: (any FlowRunObserver)? = nil) async throws -> (runID: String, outcome: RunOutcome) {
        let run = try admit(request, visible: false, progress: progress)
        try await arrive(run, durable: false)
        run.beginInline()
        let outcome = await execute(run, request, visible: false)
        run.endInline()
        return (run.runID, outcome)
    }

    /// A run whose id is handed out at once (`visible`) publishes its events to the backend,
    /// for other processes to follow.
    private func admit(_ request: RunRequest, visible: Bool, progress: (any FlowRunObserver)? = nil) throws(HTTPError) -> LiveRun {
        if !backend.isAvailable { throw HTTPError.unavailable("Storage unavailable") }
        let runID = RunIDs.make()
        var onEvent: (@Sendable (RunEvent) -> Void)?
        if visible { onEvent = { [backend] event in backend.publish(runID, event) } }
        let run = LiveRun(record: RunRecord(runID: runID, flow: request.flow, storyID: request.storyID,
                                           status: .queued, createdAt: Date()),
                          metrics: metrics, progress: progress, onEvent: onEvent)
        let admitted = live.withLock { runs -> Bool in
            guard runs.count < maxRuns else { return false }
            runs[run.runID] = run
            return true
        }
        guard admitted else { throw HTTPError.unavailable("Too many runs in flight") }
        return run
    }

    /// The run's place in its story's order; a run the backend refused is forgotten.
    private func arrive(_ run: LiveRun, durable: Bool) async throws(StoreError) {
        do {
            try await backend.arrive(run.record, durable: durable)
        } catch {
            live.withLock { _ = $0.removeValue(forKey: run.runID) }
            throw error
        }
    }

    /// A run's life from its turn to its stored end.
    @discardableResult
    private func execute(_ run: LiveRun, _ request: RunRequest, visible: Bool) async -> RunOutcome {
        let started = ContinuousClock.now
        var (outcome, record, events) = run.conclude(await perform(run, request, visible: visible))
        if case .succeeded = outcome {
            // Its commit stored its end with its memory.
        } else if await !storeFinish(RunFinish(record: record, events: events)) {
            // Another process's cancel came first (the shared store decided): the run ends cancelled.
            (record, events) = run.reconcludeCancelled()
            outcome = .cancelled
            _ = await storeFinish(RunFinish(record: record, events: events))
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

    /// The run in its story's turn (among processes: the backend; in this one: the executor),
    /// its flow, and its success committed.
    private func perform(_ run: LiveRun, _ request: RunRequest, visible: Bool) async -> RunOutcome {
        do {
            guard try await backend.waitForTurn(run.record, announce: visible) else { return .cancelled }
        } catch {
            return .storeFailed(error)
        }
        let outcome = await executor.inTurn(of: request.storyID) { () async -> RunOutcome in
            run.markRunning()
            switch await executor.run(request, observer: run) {
            case .ended(let outcome): return outcome
            case .succeeded(let result, let memory): return await commit(run, result: result, memory: memory)
            }
        }
        return outcome ?? .cancelled
    }

    /// Commits a success with its finish, unless a cancel came first (`LiveRun.claimCommit`,
    /// or the shared store's answer).
    private func commit(_ run: LiveRun, result: String, memory: MemoryTransaction) async -> RunOutcome {
        guard case .commit(let finish) = run.claimCommit(result: result) else { return .cancelled }
        do {
            let started = ContinuousClock.now
            try await backend.commit(memory, finish: finish)
            metrics.memoryCommit(duration: ContinuousClock.now - started)
            return .succeeded(result: result)
        } catch where error.kind == .cancelled {
            return .cancelled
        } catch {
            return .storeFailed(error)
        }
    }

    /// Stores the end of a run that did not succeed. False, storing nothing, when the backend
    /// refused it because another process's cancel of the run came first.
    private func storeFinish(_ finish: RunFinish) async -> Bool {
        do {
            try await backend.finish(finish)
        } catch where error.kind == .cancelled {
            return false
        } catch {
            logger.error("run record not stored", metadata: ["run_id": "\(finish.record.runID)", "error": "\(error)"])
        }
        return true
    }

    func liveRun(_ runID: String) -> LiveRun? { live.withLock { $0[runID] } }

    /// The ids of the runs going on now.
    public var liveRunIDs: [String] { live.withLock { Array($0.keys) } }

    /// The record of a live or finished run.
    func record(_ runID: String) async throws -> RunRecord? {
        if let run = liveRun(runID) { return run.record }
        return try await backend.record(runID)
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
                let pruned = try await backend.prune(finishedBefore: Date().addingTimeInterval(-retention.seconds))
                if pruned > 0 { logger.info("pruned run records", metadata: ["count": "\(pruned)"]) }
            } catch {
                logger.error("pruning run records failed: \(error)")
            }
            try? await Task.sleep(for: .seconds(3600))
        }
    }
}
