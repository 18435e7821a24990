/// A page of runs, newest first.
public struct RunPage: Sendable, Hashable {
    public var records: [RunRecord]
    /// Whether runs older than the last record may match too (then it is a full page).
    public var more: Bool

    public init(records: [RunRecord], more: Bool) {
        self.records = records
        self.more = more
    }
}
