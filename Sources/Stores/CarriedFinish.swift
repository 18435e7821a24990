import FlowdJSON

/// A run's finish line (`runs.jsonl`'s `{"op":"finish",…}`) carried inside the memory
/// transaction that the run commits, so that one write and one `fdatasync` make both the
/// run's memory and its record durable.
///
/// The memory store writes it into its own line (`{"tx":[…],"run":<finish>}`) and, once that
/// line is durable, hands it to its `CarriedFinishSink` (the run store), which appends it to
/// `runs.jsonl` without making the run wait. Until the run store has synced it, the copy in
/// `memory.jsonl` is the durable one: memory compaction first asks the sink to sync, and
/// opening the stores together (`JSONLStores.open`) adopts every carried finish that
/// `runs.jsonl` lacks. See `docs/storage.md`.
public struct CarriedFinish: Sendable, Hashable {
    public let runID: String
    /// The run's idempotency key, if it has one (indexed when the finish is adopted).
    let key: String?
    /// The finish object, without a newline.
    let bytes: [UInt8]
    /// Where its parts are, relative to `bytes` (`lineOffset` 0, `lineLength` with the newline).
    let entry: RunLog.FinishedEntry
    /// What the listing index needs of the run.
    let summary: RunIndex.Summary

    /// The finish of a run: its final record (`finishedAt` set) and every event.
    public init(record: RunRecord, events: [RunEvent]) throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id \"\(record.runID)\"") }
        guard record.status.isFinished, record.finishedAt != nil else {
            throw StoreError(.invalidRecord, "a carried finish needs a finished record, not \(record.status.rawValue)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        entry = RunLog.appendFinish(record, events: events, to: &bytes)
        bytes.removeLast()  // the newline: the memory line embeds the object
        self.bytes = bytes
        runID = record.runID
        key = record.idempotency?.key
        summary = RunIndex.Summary(record)
    }

    /// A finish read back from a memory line (at open); nil when it is not a valid finish.
    init?(decoding bytes: [UInt8]) {
        var parser = JSONParser()
        let decoded = bytes.withUnsafeBufferPointer { RunLog.decode($0, at: 0, with: &parser) }
        guard case .success(.finish(let id, let entry, let key, let summary)) = decoded else { return nil }
        runID = id
        self.summary = summary
        self.key = key
        self.bytes = bytes
        self.entry = entry
    }
}
