/// Takes the finishes carried by memory transactions once they are durable in memory
/// (the JSONL run store).
public protocol CarriedFinishSink: Sendable {
    /// Takes finishes whose memory line is durable; they are readable at once and written
    /// to the sink's own log soon. A finish it already has is ignored.
    func accept(_ finishes: [CarriedFinish]) async
    /// Returns once every finish accepted so far is durable in the sink's own log.
    func syncCarried() async throws(StoreError)
}
