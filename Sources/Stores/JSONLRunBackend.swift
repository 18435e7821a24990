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
/// - Runs a stop left unfinished are failed (`RunFinish.interrupted`) when it opens.
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
        runCompactionMinimum: Int = JSONLRunStore.defaultCompactionMinimum
    ) async throws(StoreError) -> JSONLRunBackend {
        let files = try FileDocumentStore(directory: docsDirectory)
        let (memory, runs) = try await JSONLStores.open(
            directory: dataDirectory, logger: logger, memoryCompactionMinimum: memoryCompactionMinimum,
            carriedCompactionMinimum: carriedCompactionMinimum, runCompactionMinimum: runCompactionMinimum)
        return JSONLRunBackend(memoryStore: memory, runs: runs, files: files, dataDirectory: dataDirectory)
    }

    public var isAvailable: Bool { true }

    public func readinessProblem() -> String? {
        access(dataDirectory.path, W_OK) == 0 ? nil : "Data directory is not writable"
    }

    /// A durable arrival is a synced `start` line. Otherwise nothing is written: the run's
    /// end stores its whole record.
    public func arrive(_ record: RunRecord, durable: Bool) async throws(StoreError) {
        guard durable else { return }
        try await runs.create(record, durable: true)
    }

    /// No other process: the executor's order is the story's order.
    public func waitForTurn(_ record: RunRecord, announce: Bool) async throws(StoreError) -> Bool { true }

    public func publish(_ runID: String, _ event: RunEvent) {}

    public func commit(_ memory: MemoryTransaction, finish: RunFinish) async throws(StoreError) {
        try await memoryStore.commit(memory, carrying: finish)
    }

    public func finish(_ finish: RunFinish) async throws(StoreError) {
        try await runs.finish(finish.record, events: finish.events)
    }

    public func record(_ runID: String) async throws(StoreError) -> RunRecord? {
        try await runs.record(runID)
    }

    public func storedEvents(_ runID: String, after: Int) async throws(StoreError) -> StoredEvents? {
        try await runs.events(runID, after: after).map(StoredEvents.finished)
    }

    public func follow(_ runID: String, after: Int, send: @escaping @Sendable (RunEvent) -> Void,
                       isClosed: @escaping @Sendable () -> Bool) async {}

    public func requestCancel(_ runID: String) async throws(StoreError) -> RunRecord? { nil }

    public func run(cancel: @escaping @Sendable (String) -> Void) async {}

    public func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int {
        try await runs.prune(finishedBefore: cutoff)
    }

    /// Memory first: its last batch may hand carried finishes to the run store.
    public func close() async throws(StoreError) {
        try await memoryStore.close()
        try await runs.close()
    }
}
