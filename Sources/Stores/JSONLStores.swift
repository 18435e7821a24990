import Foundation
import Logging

/// The embedded stores of a data directory, opened together so that a run's memory and its
/// record can share one durable write (`CarriedFinish`).
public enum JSONLStores {
    /// Opens the run store and the memory store in `directory`; the memory store hands its
    /// carried finishes to the run store.
    ///
    /// Order: `runs.jsonl` is replayed first; then `memory.jsonl`, which reports the carried
    /// finishes of runs that `runs.jsonl` lacks (a crash came before the run store wrote
    /// them); those are stored durably before the run store marks interrupted runs failed
    /// (`RestartPolicy.fail`) or keeps them to be resumed (`.resume`).
    public static func open(
        directory: URL, logger: Logger,
        memoryCompactionMinimum: Int = JSONLMemoryStore.defaultCompactionMinimum,
        carriedCompactionMinimum: Int = JSONLMemoryStore.defaultCarriedCompactionMinimum,
        runCompactionMinimum: Int = JSONLRunStore.defaultCompactionMinimum, onRestart: RestartPolicy = .fail
    ) async throws(StoreError) -> (memory: JSONLMemoryStore, runs: JSONLRunStore) {
        let (runs, memory) = try await JSONLRunStore.open(
            directory: directory, logger: logger, compactionMinimum: runCompactionMinimum, onRestart: onRestart
        ) { finished throws(StoreError) in
            let memory = try await JSONLMemoryStore.open(
                directory: directory, logger: logger, compactionMinimum: memoryCompactionMinimum,
                carriedCompactionMinimum: carriedCompactionMinimum, isStoredRun: { finished[$0] != nil })
            return (memory, await memory.takeUnstoredFinishes())
        }
        await memory.attach(runs)
        return (memory, runs)
    }
}
