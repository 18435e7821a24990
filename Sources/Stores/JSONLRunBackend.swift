import Foundation
import Glibc
import Logging

/// The embedded backend: one process, its data directory (`memory.jsonl`, `runs.jsonl`) and
/// its docs directory. See docs/storage.md.
///
/// - Story order is the executor's, in this process: `arrive` and `waitForTurn` only store
///   what must be durable (the record of a run whose id is handed out at once).
/// - A success is one line of `memory.jsonl` and one `fdatasync`: the run's finish rides in
///   its memory line (`CarriedFinish`) and the run store writes its own copy later, nobody
///   waiting. Other ends are one line of `runs.jsonl`.
/// - Runs a stop left unfinished are, with `RestartPolicy.resume`, handed over at start
///   (`takeOverInterrupted`) with their journals; with `.fail`, failed when it opens.
/// - A run's journal is `steps` lines of `runs.jsonl`; an idempotency key lives in the run's
///   record (in RAM from a `/run`'s arrival until its record is written).
/// - No other process shares the files, so nothing is followed or cancelled elsewhere.
public struct JSONLRunBackend: RunBackend {
    let memoryStore: JSONLMemoryStore
    let runs: JSONLRunStore
    let files: FileDocumentStore
    let dataDirectory: URL

    public var memory: any MemoryStore { memoryStore }
    public var documents: any DocumentStore { files }

    /// Opens the stores of `dataDirectory` and `docsDirectory`, creating them if missing.
    ///
    /// Order: `runs.jsonl` is replayed first; then `memory.jsonl`, which reports the carried
    /// finishes of runs that `runs.jsonl` lacks (a crash came before the run store wrote
    /// them); those are stored durably before the run store marks interrupted runs failed.
    public static func open(
        dataDirectory: URL, docsDirectory: URL, logger: Logger,
        memoryCompactionMinimum: Int = JSONLMemoryStore.defaultCompactionMinimum,
        carriedCompactionMinimum: Int = JSONLMemoryStore.defaultCarriedCompactionMinimum,
        runCompactionMinimum: Int = JSONLRunStore.defaultCompactionMinimum, onRestart: RestartPolicy = .resume
    ) async throws(StoreError) -> JSONLRunBackend {
        let files = try FileDocumentStore(directory: docsDirectory)
        let (memory, runs) = try await JSONLStores.open(
            directory: dataDirectory, logger: logger, memoryCompactionMinimum: memoryCompactionMinimum,
            carriedCompactionMinimum: carriedCompactionMinimum, runCompactionMinimum: runCompactionMinimum, onRestart: onRestart)
        return JSONLRunBackend(memoryStore: memory, runs: runs, files: files, dataDirectory: dataDirectory)
    }

    public var isAvailable: Bool { true }

    public func readinessProblem() -> String? {
        access(dataDirectory.path, W_OK) == 0 ? nil : "Data directory is not writable"
    }

    /// A durable arrival is a synced `start` line. Otherwise nothing is written (its key, if
    /// any, is taken in RAM): the run's journal or its end stores its whole record.
    public func arrive(_ record: RunRecord, durable: Bool) async throws(StoreError) -> Arrival {
        guard durable else {
            return record.idempotency == nil ? .arrived : try await runs.reserveKey(of: record)
        }
        return try await runs.arrive(record, durable: true)
    }

    public func runID(forKey key: String) async throws(StoreError) -> String? {
        await runs.runID(forKey: key)
    }

    public func journal(_ record: RunRecord, steps: [RunStep], first: Int, events: [RunEvent]) async throws(StoreError) {
        try await runs.journal(record, steps: steps, events: events)
    }

    public func steps(of runID: String) async throws(StoreError) -> [RunStep]? {
        try await runs.steps(of: runID)
    }

    public func takeOverInterrupted() async throws(StoreError) -> [InterruptedRun] {
        try await runs.takeOverInterrupted()
    }

    /// No other process: the executor's order is the story's order.
    public func waitForTurn(_ record: RunRecord, announce: Bool) async throws(StoreError) -> Bool { true }

    public func publish(_ runID: String, _ event: RunEvent) {}

    public func commit(_ memory: MemoryTransaction, finish: RunFinish) async throws(StoreError) {
        try await memoryStore.commit(memory, carrying: finish)
    }

    public func finish(_ finish: RunFinish) async throws(StoreError) {
        try await runs.finish(finish.record, events: finish.events, steps: finish.steps)
    }

    public func record(_ runID: String) async throws(StoreError) -> RunRecord? {
        try await runs.record(runID)
    }

    public func list(_ query: RunQuery) async throws(StoreError) -> RunPage {
        try await runs.list(query)
    }

    public func storedEvents(_ runID: String, after: Int) async throws(StoreError) -> StoredEvents? {
        try await runs.events(runID, after: after).map(StoredEvents.finished)
    }

    public func follow(_ runID: String, after: Int, send: @escaping @Sendable (RunEvent) -> Void,
                       isClosed: @escaping @Sendable () -> Bool) async {}

    public func requestCancel(_ runID: String) async throws(StoreError) -> RunRecord? { nil }

    public func run(cancel: @escaping @Sendable (String) -> Void, resume: @escaping @Sendable ([InterruptedRun]) -> Void) async {}

    public func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int {
        try await runs.prune(finishedBefore: cutoff)
    }

    /// Memory first: its last batch may hand carried finishes to the run store.
    public func close() async throws(StoreError) {
        try await memoryStore.close()
        try await runs.close()
    }
}
