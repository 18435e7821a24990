import Foundation
import Glibc
import Logging

/// Run records and their events in one JSONL file (`runs.jsonl`) under the data directory.
/// See `docs/storage.md` for the layout and the rules.
///
/// Invariants:
/// - RAM holds the records of live (queued, running) runs and, per finished run, only a
///   fixed-size `RunLog.FinishedEntry`: where its line is. A finished run's record and
///   events are read from the file on demand (`pread`, off the actor), never cached.
/// - Every run kept has two 32-byte `RunIndex` entries (all runs' order, its story's), with
///   its stored status, kept with every write that changes them: `list` walks them, never
///   the file, and reads only its page's records.
/// - `finish` (and `create(durable: true)`, `prune`) return only after their line was
///   written and `fdatasync` returned; concurrent ones share one write + one sync (group
///   commit) on a dedicated thread, as in `JSONLMemoryStore`.
/// - `create(durable: false)` only appends its line to the pending batch: the next batch
///   writes it, before the finish of the same run; an idle store writes it within ~20 ms.
/// - A finished run reads as finished once its line is durable.
/// - After a failed write or sync the store refuses every write (`.failed`) until reopened.
/// - As a `CarriedFinishSink`, it takes finishes already durable in `memory.jsonl`: they are
///   readable at once (from RAM) and written with the next batch, which nobody waits for.
///   A batch nobody waits on (the idle flush) is written without `fdatasync`: the next
///   synced batch, `flush`, `syncCarried` or `close` syncs it. So the device is asked to
///   flush its cache for this log only when a durability promise needs it.
public actor JSONLRunStore: RunStore, GroupCommitting, CarriedFinishSink {
    public static let fileName = "runs.jsonl"
    static let lockFileName = "runs.lock"
    static let compactionFileName = "runs.jsonl.compact"
    private static let names = AppendLog.Names(
        file: fileName, lock: lockFileName, compaction: compactionFileName, lockedWhat: "run records are")

    /// Compaction starts when the file holds more than `compactionRatio` × live runs lines
    /// and more than `compactionMinimum` of them.
    public static let defaultCompactionMinimum = 10_000
    public static let compactionRatio = 4
    /// How long a non-durable create may wait for a batch to carry it when the store is idle.
    static let idleFlushDelay: Duration = .milliseconds(20)

    private let path: String
    private let logger: Logger
    private let compactionMinimum: Int

    /// The file, its lock, its size and the failure latch.
    private let log: AppendLog
    /// The open file, which readers take with the entries they read (`SharedFile`).
    private var file: SharedFile { log.file }
    private var fileSize: Int { log.size }
    private var lines: Int
    /// Queued and running runs, by id.
    private var active: [String: RunRecord]
    /// Finished runs: where their lines are.
    private var finished: [String: RunLog.FinishedEntry]
    /// Every run kept, in listing order (`list`).
    private var index: RunIndex
    /// The journals of live runs, as written.
    private var journals: [String: RunLog.Journal]
    /// Idempotency key → run id, for every run kept (a `/run`'s from its arrival, in RAM
    /// until its record is written with the key).
    private var keys: [String: String]
    /// Live runs left unfinished by an earlier process, in arrival order, until taken over.
    private var interrupted: [String]
    /// Carried finishes accepted but not yet written: read from RAM meanwhile.
    private var carried: [String: CarriedFinish] = [:]
    /// Lines written without a sync (batches of carried finishes and non-durable creates
    /// only): the next synced batch, `flush` or `syncCarried` syncs them.
    private var unsynced = false

    /// Lines accepted but not yet written, and the batch being written.
    var commit = GroupCommit<Op>()
    private var flushScheduled = false
    private var failure: StoreError? { log.failure }
    private var isClosed = false
    private var compactionFloor = 0
    private var pruneResults: [Int: Int] = [:]
    private var nextPruneToken = 0

    enum Op {
        case start(String)
        case steps(RunRecord, RunLog.Journal)
        /// The entry's `lineOffset` is relative to the batch's first byte.
        case finish(String, RunLog.FinishedEntry, RunIndex.Summary)
        case prune(beforeMS: Int64, token: Int)
    }

    // MARK: Opening

    /// Opens (creating it if missing) the run store in `directory` and replays its file.
    ///
    /// Takes an exclusive `flock` on `runs.lock` (`.locked` if another process holds it).
    /// Every run the file shows started but not finished is, with `RestartPolicy.fail`,
    /// finished as `failed`, with the error `flowd stopped while the run was <status>` and
    /// one `error` event, durably, before this returns; with `.resume` it stays live until
    /// `takeOverInterrupted` hands it on.
    public static func open(
        directory: URL, logger: Logger, compactionMinimum: Int = defaultCompactionMinimum, onRestart: RestartPolicy = .fail
    ) async throws(StoreError) -> JSONLRunStore {
        try await open(directory: directory, logger: logger, compactionMinimum: compactionMinimum, onRestart: onRestart) { _ throws(StoreError) in
            ((), [])
        }.store
    }

    /// Opens the run store as `open` does, but before it finishes the interrupted runs it
    /// asks `adopt` (given the finished runs it has) for carried finishes to store, and
    /// stores, durably, those of runs it has not finished.
    static func open<Extra: Sendable>(
        directory: URL, logger: Logger, compactionMinimum: Int = defaultCompactionMinimum, onRestart: RestartPolicy,
        adopt: (_ finished: [String: RunLog.FinishedEntry]) async throws(StoreError) -> (Extra, [CarriedFinish])
    ) async throws(StoreError) -> (store: JSONLRunStore, extra: Extra) {
        let now = Date()
        let (log, recovered) = try await AppendLog.open(
            directory: directory.path, names: names, label: "runs", logger: logger, io: IOThread(name: "flowd-runs")
        ) { fd, path throws(StoreError) in
            let start = Date()
            let recovered = try RunLog.replay(fd: fd, path: path, logger: logger)
            logger.info(
                "runs: loaded",
                metadata: [
                    "file": "\(path)", "lines": "\(recovered.lines)", "finished": "\(recovered.finished.count)",
                    "seconds": "\(Date().timeIntervalSince(start))",
                ])
            return (recovered.fileSize, recovered)
        }
        // From here a failure releases `log`, and with it the lock.
        let (extra, adopted) = try await adopt(recovered.finished)
        let (file, path) = (log.file, log.path)
        let opened = try await log.io.run { () throws(StoreError) -> RunLog.Recovered in
            var state = recovered
            let stored = try storeAdopted(adopted, in: &state, file: file)
            if stored > 0 {
                logger.warning("runs: run finishes found only in memory.jsonl stored", metadata: ["file": "\(path)", "runs": "\(stored)"])
            }
            let interrupted = state.active.count
            if interrupted > 0, onRestart == .fail {
                try finishInterrupted(&state, file: file, now: now)
                logger.warning(
                    "runs: runs interrupted by a stop marked failed", metadata: ["file": "\(path)", "runs": "\(interrupted)"])
            }
            return state
        }
        log.grew(by: opened.fileSize - recovered.fileSize)
        let store = JSONLRunStore(logger: logger, compactionMinimum: compactionMinimum, recovered: opened, log: log)
        return (store, extra)
    }

    /// Appends (and syncs) the finish line of each carried finish whose run is not finished.
    private static func storeAdopted(_ finishes: [CarriedFinish], in state: inout RunLog.Recovered, file: SharedFile) throws(StoreError) -> Int {
        var bytes: [UInt8] = []
        var entries: [(String, RunLog.FinishedEntry, key: String?, RunIndex.Summary)] = []
        var taken = Set<String>()
        for finish in finishes where state.finished[finish.runID] == nil && taken.insert(finish.runID).inserted {
            var entry = finish.entry
            entry.lineOffset = bytes.count
            bytes.append(contentsOf: finish.bytes)
            bytes.append(UInt8(ascii: "\n"))
            entries.append((finish.runID, entry, finish.key, finish.summary))
        }
        if !entries.isEmpty { try appendFinishes(bytes, entries, to: &state, file: file) }
        return entries.count
    }

    /// Writes and syncs finish lines at open, then indexes them; `entries`' offsets are
    /// relative to `bytes`. On failure the file is cut back and nothing is indexed.
    private static func appendFinishes(_ bytes: [UInt8], _ entries: [(String, RunLog.FinishedEntry, key: String?, RunIndex.Summary)],
                                       to state: inout RunLog.Recovered, file: SharedFile) throws(StoreError) {
        try AppendLog.append(bytes, to: file, at: state.fileSize, sync: true)
        for (id, var entry, key, summary) in entries {
            entry.lineOffset += state.fileSize
            RunLog.apply(.finish(id, entry, key: key, summary: summary), to: &state)
        }
        state.fileSize += bytes.count
        state.lines += entries.count
    }

    /// Writes (and syncs) a `failed` finish line for every run left queued or running.
    private static func finishInterrupted(_ state: inout RunLog.Recovered, file: SharedFile, now: Date) throws(StoreError) {
        var bytes: [UInt8] = []
        var entries: [(String, RunLog.FinishedEntry, key: String?, RunIndex.Summary)] = []
        for (id, record) in state.active.sorted(by: { (state.arrival[$0.key] ?? 0) < (state.arrival[$1.key] ?? 0) }) {
            let journal = state.journals[id] ?? RunLog.Journal()
            let verdict = RunFinish.interrupted(record, events: journal.events, lastEventID: journal.events.last?.id,
                                                steps: journal.steps, at: now)
            entries.append((id, RunLog.appendFinish(verdict.record, events: verdict.events, steps: verdict.steps, to: &bytes),
                            record.idempotency?.key, RunIndex.Summary(verdict.record)))
        }
        try appendFinishes(bytes, entries, to: &state, file: file)
    }

    private init(logger: Logger, compactionMinimum: Int, recovered: RunLog.Recovered, log: AppendLog) {
        self.path = log.path
        self.logger = logger
        self.compactionMinimum = compactionMinimum
        self.log = log
        self.lines = recovered.lines
        self.active = recovered.active
        self.finished = recovered.finished
        self.index = RunIndex(
            recovered.active.values.map(RunIndex.Summary.init)
                + recovered.summaries.lazy.filter { recovered.finished[$0.key] != nil }.map(\.value))
        self.journals = recovered.journals
        self.keys = recovered.keys
        self.interrupted = recovered.active.keys.sorted { (recovered.arrival[$0] ?? 0) < (recovered.arrival[$1] ?? 0) }
    }

    // MARK: Reads

    private enum Found {
        case active(RunRecord)
        case finished(SharedFile, RunLog.FinishedEntry)
        case carried(CarriedFinish)
    }

    private func find(_ runID: String) -> Found? {
        if let finish = carried[runID] { return .carried(finish) }
        if let record = active[runID] { return .active(record) }
        if let entry = finished[runID] { return .finished(file, entry) }
        return nil
    }

    /// A live run's record from RAM; a finished one's read from its line (off the actor).
    public nonisolated func record(_ runID: String) async throws(StoreError) -> RunRecord? {
        guard Identifier.isValidID(runID) else { return nil }
        switch await find(runID) {
        case nil: return nil
        case .active(let record): return record
        case .finished(let file, let entry): return try RunLog.readRecord(file, entry)
        case .carried(let finish): return try RunLog.record(in: finish.bytes, finish.entry, path: path)
        }
    }

    /// A page of runs, newest first: chosen from the index in RAM, live records from RAM,
    /// finished ones read from their lines (off the actor).
    public nonisolated func list(_ query: RunQuery) async throws(StoreError) -> RunPage {
        let (found, more) = await page(query)
        var records: [RunRecord] = []
        records.reserveCapacity(found.count)
        for run in found {
            switch run {
            case .active(let record): records.append(record)
            case .finished(let file, let entry): records.append(try RunLog.readRecord(file, entry))
            case .carried(let finish): records.append(try RunLog.record(in: finish.bytes, finish.entry, path: path))
            }
        }
        return RunPage(records: records, more: more)
    }

    private func page(_ query: RunQuery) -> ([Found], Bool) {
        let (ids, more) = index.page(query)
        return (ids.compactMap(find), more)
    }

    public nonisolated func events(_ runID: String, after: Int) async throws(StoreError) -> [RunEvent]? {
        guard Identifier.isValidID(runID) else { return nil }
        switch await find(runID) {
        case nil, .active: return nil
        case .finished(let file, let entry): return try RunLog.readEvents(file, entry, after: after)
        case .carried(let finish): return try RunLog.events(in: finish.bytes, finish.entry, after: after, path: path)
        }
    }

    /// What the store holds in RAM, for tests and logs.
    struct Statistics: Sendable, Hashable {
        var liveRuns: Int
        var finishedRuns: Int
        /// Bytes accepted but not yet handed to the I/O thread.
        var pendingBytes: Int
        var lines: Int
        var fileSize: Int
    }

    var statistics: Statistics {
        Statistics(
            liveRuns: active.count, finishedRuns: finished.count, pendingBytes: commit.pending.bytes.count,
            lines: lines, fileSize: fileSize)
    }

    // MARK: Writes

    public func create(_ record: RunRecord, durable: Bool) async throws(StoreError) {
        _ = try await arrive(record, durable: durable)
    }

    /// `create`, unless the record's idempotency key names another run: then nothing is
    /// written and that run's id comes back.
    func arrive(_ record: RunRecord, durable: Bool) async throws(StoreError) -> Arrival {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id \"\(record.runID)\"") }
        guard !record.status.isFinished else {
            throw StoreError(.invalidRecord, "a new run must be queued or running, not \(record.status.rawValue)")
        }
        try checkWritable()
        if let key = record.idempotency?.key {
            if let earlier = keys[key], earlier != record.runID { return .duplicate(runID: earlier) }
            keys[key] = record.runID
        }
        RunLog.appendStart(record, to: &commit.pending.bytes)
        commit.pending.ops.append(.start(record.runID))
        active[record.runID] = record
        index.upsert(RunIndex.Summary(record))
        if durable {
            try await awaitBatch()
        } else if !commit.syncing {
            scheduleIdleFlush()
        }
        return .arrived
    }

    /// Takes a run's idempotency key for it, writing nothing (a `/run`'s arrival: its record
    /// is written with its journal or its end); the id of the run that has it already, if one does.
    func reserveKey(of record: RunRecord) throws(StoreError) -> Arrival {
        try checkWritable()
        guard let key = record.idempotency?.key else { return .arrived }
        if let earlier = keys[key], earlier != record.runID { return .duplicate(runID: earlier) }
        keys[key] = record.runID
        return .arrived
    }

    public func runID(forKey key: String) -> String? { keys[key] }

    /// Appends steps to a live run's journal with the events since its last such line,
    /// durably. `record` makes the run known if its start was never written.
    func journal(_ record: RunRecord, steps: [RunStep], events: [RunEvent]) async throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id \"\(record.runID)\"") }
        guard !record.status.isFinished, finished[record.runID] == nil else {
            throw StoreError(.invalidRecord, "run \(record.runID) has finished: its journal is closed")
        }
        try checkWritable()
        let journal = RunLog.Journal(steps: steps, events: events)
        RunLog.appendSteps(record, journal, to: &commit.pending.bytes)
        commit.pending.ops.append(.steps(record, journal))
        try await awaitBatch()
    }

    /// A run's journal: a live one's from RAM, a finished one's from its line; nil when unknown.
    public nonisolated func steps(of runID: String) async throws(StoreError) -> [RunStep]? {
        guard Identifier.isValidID(runID) else { return nil }
        switch await findJournal(runID) {
        case nil: return nil
        case .live(let steps): return steps
        case .finished(let file, let entry): return try RunLog.readSteps(file, entry)
        }
    }

    private enum FoundJournal {
        case live([RunStep])
        case finished(SharedFile, RunLog.FinishedEntry)
    }

    private func findJournal(_ runID: String) -> FoundJournal? {
        if carried[runID] != nil { return .live([]) }
        if active[runID] != nil { return .live(journals[runID]?.steps ?? []) }
        if let entry = finished[runID] { return .finished(file, entry) }
        return nil
    }

    /// The runs an earlier process left live, handed over once (in arrival order) to be
    /// resumed: each record's `resumed` is counted and written, durably, before this returns.
    public func takeOverInterrupted() async throws(StoreError) -> [InterruptedRun] {
        let ids = interrupted.filter { active[$0] != nil }
        interrupted = []
        guard !ids.isEmpty else { return [] }
        try checkWritable()
        var taken: [InterruptedRun] = []
        for id in ids {
            guard var record = active[id] else { continue }
            record.resumed += 1
            let journal = journals[id] ?? RunLog.Journal()
            RunLog.appendStart(record, to: &commit.pending.bytes)
            commit.pending.ops.append(.start(id))
            active[id] = record
            taken.append(InterruptedRun(record: record, steps: journal.steps, events: journal.events))
        }
        try await awaitBatch()
        return taken
    }

    public func finish(_ record: RunRecord, events: [RunEvent]) async throws(StoreError) {
        try await finish(record, events: events, steps: [])
    }

    /// `finish`, keeping the run's journal (`steps`) in its line, for a retry.
    func finish(_ record: RunRecord, events: [RunEvent], steps: [RunStep]) async throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id \"\(record.runID)\"") }
        guard record.status.isFinished else {
            throw StoreError(.invalidRecord, "a finished run cannot be \(record.status.rawValue)")
        }
        try checkWritable()
        var record = record
        if record.finishedAt == nil { record.finishedAt = Date() }
        if let key = record.idempotency?.key { keys[key] = record.runID }
        let entry = RunLog.appendFinish(record, events: events, steps: steps, to: &commit.pending.bytes)
        commit.pending.ops.append(.finish(record.runID, entry, RunIndex.Summary(record)))
        try await awaitBatch()
    }

    // MARK: Carried finishes

    /// Takes finishes already durable in `memory.jsonl`: readable now, written with the next
    /// batch (an idle store writes within ~20 ms). Runs it has finished are skipped. After a
    /// failure nothing is written: the copies in `memory.jsonl` are adopted at the next open.
    public func accept(_ finishes: [CarriedFinish]) {
        guard !isClosed, failure == nil else {
            logger.error("runs: carried finishes not written (the store is closed or failed)", metadata: ["runs": "\(finishes.count)"])
            return
        }
        for finish in finishes where finished[finish.runID] == nil && carried[finish.runID] == nil {
            var entry = finish.entry
            entry.lineOffset = commit.pending.bytes.count
            commit.pending.bytes.append(contentsOf: finish.bytes)
            commit.pending.bytes.append(UInt8(ascii: "\n"))
            commit.pending.ops.append(.finish(finish.runID, entry, finish.summary))
            carried[finish.runID] = finish
            index.upsert(finish.summary)
        }
        if !commit.syncing { scheduleIdleFlush() }
    }

    /// Returns once every accepted finish is written and synced.
    public func syncCarried() async throws(StoreError) {
        try await flush()
    }

    public func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int {
        let before = ISOTime.milliseconds(cutoff)
        guard finished.values.contains(where: { $0.finishedMS < before }) else { return 0 }
        try checkWritable()
        let token = nextPruneToken
        nextPruneToken += 1
        RunLog.appendPrune(beforeMS: before, to: &commit.pending.bytes)
        commit.pending.ops.append(.prune(beforeMS: before, token: token))
        try await awaitBatch()
        let pruned = pruneResults.removeValue(forKey: token) ?? 0
        if pruned > 0 { logger.info("runs: pruned", metadata: ["runs": "\(pruned)", "before": "\(ISOTime.string(milliseconds: before))"]) }
        return pruned
    }

    public func flush() async throws(StoreError) {
        if let failure { throw failure }
        guard commit.syncing || !commit.pending.bytes.isEmpty || unsynced else { return }
        if try await awaitTurn() { try await lead() }
        // Joined a batch that was led without a sync: sync now.
        if unsynced, try await awaitTurn() { try await lead() }
    }

    /// Flushes, then releases the lock; later writes throw `.closed`. Reads keep working.
    public func close() async throws(StoreError) {
        guard !isClosed else { return }
        while commit.syncing || !commit.pending.bytes.isEmpty || unsynced { try await flush() }
        isClosed = true
        try await log.close()
    }

    private func checkWritable() throws(StoreError) {
        if isClosed { throw StoreError(.closed, "run store is closed", path: path) }
        if let failure { throw failure }
    }

    /// Waits until the pending batch (which holds the caller's line) is durable, leading it
    /// when no batch is in flight.
    private func awaitBatch() async throws(StoreError) {
        if try await awaitTurn() { try await lead() }
    }

    /// An idle store writes non-durable creates shortly, in case no finish comes to carry them.
    private func scheduleIdleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        Task { [weak self] in
            try? await Task.sleep(for: Self.idleFlushDelay)
            await self?.idleFlush()
        }
    }

    private func idleFlush() async {
        flushScheduled = false
        guard !commit.pending.bytes.isEmpty, failure == nil, !isClosed, commit.claimLead() else { return }
        try? await lead(sync: false)
    }

    /// Writes and syncs the pending batch, applies it to the index, wakes its writers,
    /// compacts if due, then hands the lead on. Called by the leader.
    /// Without `sync` (the idle flush), a batch nobody waits on is only written: its lines
    /// are carried finishes (durable in memory.jsonl already) and non-durable creates.
    private func lead(sync leaderNeedsSync: Bool = true) async throws(StoreError) {
        let batch = commit.takeBatch()
        var error = failure
        let sync = leaderNeedsSync || !batch.waiters.isEmpty
        if error == nil, !batch.bytes.isEmpty || (sync && unsynced) {
            let size = fileSize
            do throws(StoreError) {
                try await log.append(batch.bytes, sync: sync)
                unsynced = !sync
                lines += batch.ops.count
                for op in batch.ops { apply(op, base: size) }
            } catch let e {
                // The log now refuses writes (`failure`).
                error = e
            }
        }
        GroupCommit.release(batch, error: error)

        if error == nil, lines > compactionMinimum, lines > compactionFloor,
            lines > Self.compactionRatio * (active.count + finished.count)
        {
            await compact()
        }

        commit.handOn(failure: failure)
        if !commit.syncing, !commit.pending.bytes.isEmpty { scheduleIdleFlush() }
        if let error { throw error }
    }

    private func apply(_ op: Op, base: Int) {
        switch op {
        case .start(let id):
            finished[id] = nil
        case .steps(let record, let journal):
            guard finished[record.runID] == nil, carried[record.runID] == nil else { return }
            if active[record.runID] == nil { active[record.runID] = record }
            index.upsert(RunIndex.Summary(record))
            journals[record.runID, default: RunLog.Journal()].append(journal)
        case .finish(let id, var entry, let summary):
            entry.lineOffset += base
            // A carried finish was indexed, with its final status, when it was accepted.
            if carried[id] == nil { index.upsert(summary) }
            active[id] = nil
            carried[id] = nil
            journals[id] = nil
            finished[id] = entry
        case .prune(let before, let token):
            let gone = Set(finished.lazy.filter { $0.value.finishedMS < before }.map(\.key))
            finished = finished.filter { !gone.contains($0.key) }
            index.remove(gone)
            pruneResults[token] = gone.count
            // Only the pruned runs' keys go: a `/run`'s key is in RAM before any line of it.
            if !gone.isEmpty { keys = keys.filter { !gone.contains($0.value) } }
        }
    }

    // MARK: Compaction

    /// Rewrites the file as one line per live run: a start line for each queued or running
    /// run whose start is already in the file, and each finished run's finish line copied
    /// byte for byte (its entry's relative ranges stay right; only its offset moves). Runs
    /// as the leader: the finished index does not change meanwhile, and writers queue.
    private func compact() async {
        var queuedStarts = Set<String>()
        for case .start(let id) in commit.pending.ops { queuedStarts.insert(id) }
        let live = active.values.sorted { $0.createdAt < $1.createdAt }
        let liveJournals = journals
        let pendingStarts = queuedStarts
        var ids: [String] = []
        var entries: [RunLog.FinishedEntry] = []
        ids.reserveCapacity(finished.count)
        entries.reserveCapacity(finished.count)
        for (id, entry) in finished {
            ids.append(id)
            entries.append(entry)
        }
        let oldFile = file
        let oldSize = fileSize
        let snapshot = entries
        let before = lines
        let tmp = log.compactionPath
        do throws(StoreError) {
            let (size, offsets) = try await log.io.run { () throws(StoreError) -> (Int, [Int]) in
                try AppendLog.writeCompaction(to: tmp) { (out: inout CompactionWriter) throws(StoreError) -> [Int] in
                    var offsets = [Int](repeating: 0, count: snapshot.count)
                    for record in live {
                        // A start still pending is written after this; a journal is kept either way.
                        if !pendingStarts.contains(record.runID) { RunLog.appendStart(record, to: &out.buffer) }
                        if let journal = liveJournals[record.runID] { RunLog.appendSteps(record, journal, to: &out.buffer) }
                        try out.spill()
                    }
                    // Finish lines in file order, read through a window of the old file.
                    let order = snapshot.indices.sorted { snapshot[$0].lineOffset < snapshot[$1].lineOffset }
                    var window: [UInt8] = []
                    var windowStart = 0
                    for k in order {
                        let e = snapshot[k]
                        let length = Int(e.lineLength)
                        if e.lineOffset < windowStart || e.lineOffset + length > windowStart + window.count {
                            windowStart = e.lineOffset
                            let want = min(max(4 << 20, length), max(length, oldSize - windowStart))
                            window = try FileIO.pread(oldFile.fd, count: want, at: windowStart, path: oldFile.path)
                        }
                        offsets[k] = out.size
                        let from = e.lineOffset - windowStart
                        out.buffer.append(contentsOf: window[from..<(from + length)])
                        try out.spill()
                    }
                    return offsets
                }
            }
            if try await log.switchToCompacted(size: size) {
                for (k, id) in ids.enumerated() { finished[id]?.lineOffset = offsets[k] }
                lines = live.count + liveJournals.count + ids.count
                compactionFloor = 0
                logger.info("runs: compacted", metadata: ["file": "\(path)", "lines_before": "\(before)", "lines_after": "\(lines)"])
            }
        } catch {
            compactionFloor = lines + compactionMinimum
            logger.error("runs: compaction failed; continuing with the old file", metadata: ["error": "\(error)"])
        }
    }
}
