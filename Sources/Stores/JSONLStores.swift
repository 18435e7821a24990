import Foundation
import Logging

/// The embedded stores of a data directory, opened together so that a run's memory and its
/// record can share one durable write (`CarriedFinish`).
///
/// The two stores are tied in one direction while they run: the memory store hands the
/// finishes it made durable to the run store (`CarriedFinishSink`); the run store never calls
/// the memory store. Only opening goes both ways, and the order is forced by recovery:
/// `runs.jsonl` must be replayed before `memory.jsonl` (to tell which carried finishes the run
/// store lacks), and those finishes must be stored before the run store settles its
/// interrupted runs. So the run store's `open` opens the memory store in the middle (its
/// `adopt` closure), and the memory store, made before the run store exists, gets its sink
/// afterwards (`attach`). Splitting both `open`s into phases would remove the closure but not
/// the ordering; it was not worth two half-open store states.
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
