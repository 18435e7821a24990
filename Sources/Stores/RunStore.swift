import Foundation

/// Where run records and their events are kept (the JSONL file of the data dir, or later a
/// database). Every run, `/run` ones included, has a record.
///
/// Run ids must be valid ids (`Identifier.isValidID`): a write with another id throws
/// `.invalidID`; a read of one finds nothing.
public protocol RunStore: Sendable {
    /// Records a new run (`queued` or `running`). When `durable`, it is on disk before this
    /// returns (`POST /runs` answers 202 only after); otherwise it is only queued for the
    /// next batch, but always written before the finish of the same run. Readable at once.
    func create(_ record: RunRecord, durable: Bool) async throws(StoreError)
    /// Records the final state (a finished status) and every event of a run; durable
    /// before it returns. Many concurrent finishes share one fsync.
    func finish(_ record: RunRecord, events: [RunEvent]) async throws(StoreError)
    /// The run's record; nil when unknown (or pruned).
    func record(_ runID: String) async throws(StoreError) -> RunRecord?
    /// Events of a FINISHED run with id > `after`, in order; nil if the run is unknown or not finished.
    func events(_ runID: String, after: Int) async throws(StoreError) -> [RunEvent]?
    /// Drops finished runs that finished before `cutoff` (durably); returns how many.
    func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int
    /// Returns once every write accepted so far (non-durable creates included) is on disk.
    func flush() async throws(StoreError)
}
