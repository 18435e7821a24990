import Agents
import FlowdHTTP
import Foundation
import Logging
import Stores
import FlowdSync

/// Every run of this process, and the one owner of each run's life: admits and starts
/// them (new, retried, or resumed after a process left them unfinished), runs them in
/// their story's turn, journals their steps, commits or stores their end through the
/// backend, and lets clients follow, await and cancel them. Live runs are kept here; finished ones,
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
    /// Woken when the live set empties: `waitForRuns` waits on it.
    private let noneLive = WaitList()
    /// Where every run's completed steps go (built once: it is the same for all).
    private let journal: RunJournal

    init(executor: RunExecutor, backend: any RunBackend, maxRuns: Int, heartbeat: Duration,
         metrics: FlowdMetrics, logger: Logger) {
        self.executor = executor
        self.backend = backend
        self.maxRuns = maxRuns
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.logger = logger
        journal = RunService.journal(backend: backend, catalog: executor.catalog, logger: logger)
    }

    /// Runs admitted and not yet finished, queued ones included.
    public var runsInFlight: Int { live.withLock { $0.count } }

    /// Admits and starts a run in a task of its own (503 beyond `--max-runs`); it has
    /// arrived, durably, before this returns: its id is about to be handed out. With an
    /// idempotency key already used for the same request, that run instead (`.replay`).
    func start(_ request: RunRequest, route: String) async throws -> Admission {
        let record = newRecord(request, route: route)
        if let earlier = try await replayWhenFull(record) { return .replay(earlier) }
        let run = try admit(record, visible: true)
        if let earlier = try await arrive(run, durable: true) { return .replay(earlier) }
        run.attach(Task { await self.execute(run, request, visible: true) })
        return .started(run)
    }

    /// Admits a run and runs it on the calling task (`/run` without a stream, `flowd run`):
    /// nobody learns its id before its end, so its arrival need not be durable. `progress`
    /// hears of its agents too. With an idempotency key already used for the same request,
    /// that run's record instead (`.replay`), not waited for.
    public func runInline(_ request: RunRequest, progress: (any FlowRunObserver)? = nil) async throws -> InlineRun {
        let record = newRecord(request, route: "run")
        if let earlier = try await replayWhenFull(record) { return .replay(earlier) }
        let run = try admit(record, visible: false, progress: progress)
        if let earlier = try await arrive(run, durable: false) { return .replay(earlier) }
        run.beginInline()
        let outcome = await execute(run, request, visible: false)
        run.endInline()
        return .ran(runID: run.runID, outcome: outcome)
    }

    /// Starts a new run of a failed or cancelled run's flow, input and story, from the agent
    /// that failed, with the outputs of the original's journaled steps (404 unknown, 409 any
    /// other status). While `draining`, only a replay is answered (else 503).
    func retry(_ runID: String, idempotencyKey: String?, draining: Bool) async throws -> Admission {
        guard let original = try await record(runID) else { throw HTTPError.notFound("Run '\(runID)' not found") }
        var record = RunRecord(runID: RunIDs.make(), flow: original.flow, storyID: original.storyID, status: .queued,
                               createdAt: Date(), input: original.input, retryOf: runID)
        record.idempotency = idempotencyKey.map { IdempotencyKey(key: $0, route: "retry") }
        if let earlier = try await previousRun(like: record) { return .replay(earlier) }
        if draining { throw HTTPError.unavailable("Server is draining") }
        guard original.status == .failed || original.status == .cancelled else {
            throw HTTPError(HTTPStatus.conflict, "Run '\(runID)' \(original.status.rawValue); only a failed or cancelled run can be retried")
        }
        // The steps it takes over count for the run that ran them, not in this one's usage.
        let journal = (try await backend.steps(of: runID) ?? []).map { step in
            var step = step
            step.usage = nil
            return step
        }
        if let earlier = try await replayWhenFull(record) { return .replay(earlier) }
        let run = try admit(record, visible: true, resuming: (journal, []))
        if let earlier = try await arrive(run, durable: true) { return .replay(earlier) }
        if !journal.isEmpty {
            // The new run's own journal starts with the steps it takes over, for its own resumption.
            do {
                try await backend.journal(run.record, steps: journal, first: 1, events: [])
            } catch {
                logger.error("retry's journal not stored", metadata: ["run_id": "\(run.runID)", "error": "\(error)"])
            }
        }
        let request = RunRequest(flow: record.flow, input: record.input, storyID: record.storyID)
        run.attach(Task { await self.execute(run, request, visible: true, journal: journal) })
        return .started(run)
    }

    /// Resumes the runs a process left unfinished, in arrival order, each first in its
    /// story's queue here (before any run that arrives after this returns).
    func resume(_ interrupted: [InterruptedRun]) async {
        for stopped in interrupted {
            let record = stopped.record
            let request = RunRequest(flow: record.flow, input: record.input, storyID: record.storyID)
            let run = LiveRun(record: record, resuming: (stopped.steps, stopped.events), metrics: metrics,
                              journal: journal, onEvent: publisher(record.runID))
            live.withLock { $0[run.runID] = run }
            let turn = await executor.reserveTurn(of: record.storyID)
            logger.notice("run resumed", metadata: ["run_id": "\(run.runID)", "flow": "\(record.flow)", "story_id": "\(record.storyID)",
                                                    "resumed": "\(record.resumed)", "steps": "\(stopped.steps.count)"])
            run.attach(Task { await self.execute(run, request, visible: true, journal: stopped.steps, resumedTurn: turn) })
        }
    }

    /// At start: the runs an earlier process of this storage left unfinished, resumed.
    public func resumeInterrupted() async throws {
        await resume(try await backend.takeOverInterrupted())
    }

    private func newRecord(_ request: RunRequest, route: String) -> RunRecord {
        RunRecord(runID: RunIDs.make(), flow: request.flow, storyID: request.storyID, status: .queued, createdAt: Date(),
                  input: request.input, idempotency: request.idempotencyKey.map { IdempotencyKey(key: $0, route: route) })
    }

    /// The run an idempotency key already names, when the request is the same; 422 when it
    /// was another request; nil when the key is new (or there is none).
    func previousRun(like record: RunRecord) async throws -> RunRecord? {
        guard let key = record.idempotency?.key, let runID = try await backend.runID(forKey: key),
              let earlier = try await self.record(runID) else { return nil }
        guard earlier.isSameRequest(as: record) else { throw HTTPError.unprocessable([.idempotencyKeyReused(key)]) }
        return earlier
    }

    /// At `--max-runs`, a request whose key names a run is still answered (with that run).
    private func replayWhenFull(_ record: RunRecord) async throws -> RunRecord? {
        guard record.idempotency != nil, runsInFlight >= maxRuns else { return nil }
        return try await previousRun(like: record)
    }

    /// A run whose id is handed out at once (`visible`) publishes its events to the backend,
    /// for other processes to follow.
    private func admit(_ record: RunRecord, visible: Bool, progress: (any FlowRunObserver)? = nil,
                       resuming: (steps: [RunStep], events: [RunEvent])? = nil) throws(HTTPError) -> LiveRun {
        if !backend.isAvailable { throw HTTPError.unavailable("Storage unavailable") }
        let run = LiveRun(record: record, resuming: resuming, metrics: metrics, progress: progress,
                          journal: journal, onEvent: visible ? publisher(record.runID) : nil)
        let admitted = live.withLock { runs -> Bool in
            guard runs.count < maxRuns else { return false }
            runs[run.runID] = run
            return true
        }
        guard admitted else { throw HTTPError.unavailable("Too many runs in flight") }
        return run
    }

    private func publisher(_ runID: String) -> @Sendable (RunEvent) -> Void {
        { [backend] event in backend.publish(runID, event) }
    }

    /// The runs' journal: through the backend, durably for an llm agent's step and for one of
    /// 100 ms or more, before the next agent starts.
    private static func journal(backend: any RunBackend, catalog: AgentCatalog, logger: Logger) -> RunJournal {
        let llmAgents = Set(catalog.agentIDs.filter { catalog.agent(id: $0)?.kind == .llm })
        return RunJournal(
            write: { record, steps, first, events in
                do {
                    try await backend.journal(record, steps: steps, first: first, events: events)
                    return true
                } catch {
                    logger.error("run journal not stored", metadata: ["run_id": "\(record.runID)", "error": "\(error)"])
                    return false
                }
            },
            mustBeDurable: { agent, duration in
                duration >= RunService.durableStepDuration || (!llmAgents.isEmpty && llmAgents.contains(agent))
            })
    }

    /// A step that took this long is journaled durably before the next agent starts.
    static let durableStepDuration: Duration = .milliseconds(100)

    /// The run's place in its story's order; a run the backend refused is forgotten. When its
    /// key names another run already, that run's record (this one is forgotten).
    private func arrive(_ run: LiveRun, durable: Bool) async throws -> RunRecord? {
        let arrival: Arrival
        do {
            arrival = try await backend.arrive(run.record, durable: durable)
        } catch {
            forget(run)
            throw error
        }
        guard case .duplicate(let earlierID) = arrival else { return nil }
        forget(run)
        guard let earlier = try await record(earlierID) else { throw HTTPError.unavailable("Run '\(earlierID)' not readable yet") }
        guard earlier.isSameRequest(as: run.record) else {
            throw HTTPError.unprocessable([.idempotencyKeyReused(run.record.idempotency?.key ?? "")])
        }
        return earlier
    }

    /// A run's life from its turn to its stored end.
    @discardableResult
    private func execute(_ run: LiveRun, _ request: RunRequest, visible: Bool, journal: [RunStep] = [],
                         resumedTurn: StoryTurn? = nil) async -> RunOutcome {
        let started = ContinuousClock.now
        var (outcome, finish) = run.conclude(await perform(run, request, visible: visible, journal: journal, resumedTurn: resumedTurn))
        if case .succeeded = outcome {
            // Its commit stored its end with its memory.
        } else if await !storeFinish(finish) {
            // Another process's cancel came first (the shared store decided): the run ends cancelled.
            finish = run.reconcludeCancelled()
            outcome = .cancelled
            _ = await storeFinish(finish)
        }
        let record = finish.record
        // The run stays live, and so readable here, until its record is stored.
        run.publishConclusion()
        forget(run)
        let duration = ContinuousClock.now - started
        metrics.run(flow: request.flow, outcome: record.status.rawValue, duration: duration)
        logger.info("run", metadata: ["run_id": "\(run.runID)", "flow": "\(request.flow)", "story_id": "\(request.storyID)",
                                      "status": "\(record.status.rawValue)", "duration_ms": "\(LogFormat.milliseconds(duration))"])
        return outcome
    }

    /// The run in its story's turn (among processes: the backend; in this one: the executor),
    /// its flow, and its success committed. A resumed run (`resumedTurn`, its place taken
    /// when it was handed over) says so first, naming the agent it goes on with.
    private func perform(_ run: LiveRun, _ request: RunRequest, visible: Bool, journal: [RunStep],
                         resumedTurn: StoryTurn?) async -> RunOutcome {
        do {
            guard try await backend.waitForTurn(run.record, announce: visible) else {
                if let resumedTurn { await executor.abandon(resumedTurn) }
                return .cancelled
            }
        } catch {
            if let resumedTurn { await executor.abandon(resumedTurn) }
            return .storeFailed(error)
        }
        let body = { () async -> RunOutcome in
            run.markRunning()
            if resumedTurn != nil { run.publishResumed(agent: self.executor.nextAgent(of: request.flow, after: journal)) }
            switch await self.executor.run(request, journal: journal, observer: run) {
            case .ended(let outcome): return outcome
            case .succeeded(let result, let memory): return await self.commit(run, result: result, memory: memory)
            }
        }
        let outcome = if let resumedTurn {
            await executor.inTurn(resumedTurn, body)
        } else {
            await executor.inTurn(of: request.storyID, body)
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

    /// Takes a run out of the live set; the last one out wakes `waitForRuns`.
    private func forget(_ run: LiveRun) {
        let empty = live.withLock { runs -> Bool in
            runs.removeValue(forKey: run.runID)
            return runs.isEmpty
        }
        if empty { noneLive.notify() }
    }

    func liveRun(_ runID: String) -> LiveRun? { live.withLock { $0[runID] } }

    /// The ids of the runs going on now.
    public var liveRunIDs: [String] { live.withLock { Array($0.keys) } }

    /// The record of a live or finished run.
    func record(_ runID: String) async throws -> RunRecord? {
        if let run = liveRun(runID) { return run.record }
        return try await backend.record(runID)
    }

    /// A page of `GET /runs`: the backend's page merged with this process's live runs, with
    /// their current status (the filter sees that one), each run once, newest first.
    ///
    /// The live runs are read before the backend: a run that leaves the live set meanwhile is
    /// stored by then, so none falls between the two. When the backend has more, only live
    /// runs newer than the last stored run it examined join, and the next cursor is at most
    /// that run's position: nothing past it is skipped, even when the page comes out short.
    func list(_ query: RunQuery) async throws -> (records: [RunRecord], next: RunCursor?) {
        let liveRuns = live.withLock { Array($0.values) }.map(\.record)
        let current = Dictionary(liveRuns.map { ($0.runID, $0) }, uniquingKeysWith: { first, _ in first })
        let stored = try await backend.list(query)
        let floor = stored.more ? stored.records.last.map(RunCursor.init) : nil
        var seen = Set<String>()
        var records: [RunRecord] = []
        for record in stored.records {
            seen.insert(record.runID)
            // A stored end is newer than any live copy; a stored live status may be stale.
            let now = record.status.isFinished ? record : (current[record.runID] ?? record)
            if query.matches(now) { records.append(now) }
        }
        for record in liveRuns where !seen.contains(record.runID) && query.matches(record) {
            let position = RunCursor(record)
            if let before = query.before, !(position < before) { continue }
            if let floor, !(floor < position) { continue }
            records.append(record)
        }
        records.sort { RunCursor($1) < RunCursor($0) }
        if records.count > query.limit {
            records.removeLast(records.count - query.limit)
            return (records, records.last.map(RunCursor.init))
        }
        return (records, floor)
    }

    /// Cancels every live run (the drain timeout), resumed ones included.
    public func cancelAll() {
        for run in live.withLock({ Array($0.values) }) { run.cancel() }
    }

    /// Waits until no run is live, up to `timeout`; true when none is. Woken by the run
    /// that empties the live set, not by polling.
    public func waitForRuns(timeout: Duration) async -> Bool {
        await noneLive.wait(until: { runsInFlight == 0 }, timeout: timeout)
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

/// What a request that starts a run got.
enum Admission {
    case started(LiveRun)
    /// Its idempotency key names this run, started by an earlier request: nothing started.
    case replay(RunRecord)
}

/// What `RunService.runInline` did.
public enum InlineRun: Sendable {
    case ran(runID: String, outcome: RunOutcome)
    /// Its idempotency key names this run, started by an earlier request: nothing ran.
    case replay(RunRecord)
}
