/// One page of `GET /runs`: filters that combine, a size, and where the previous page ended.
public struct RunQuery: Sendable, Hashable {
    public var storyID: String?
    public var flow: String?
    /// Matched against each run's current status.
    public var status: RunStatus?
    /// 1…100.
    public var limit: Int
    /// Only runs older than this position (the last run of the previous page).
    public var before: RunCursor?

    public init(storyID: String? = nil, flow: String? = nil, status: RunStatus? = nil, limit: Int = 20, before: RunCursor? = nil) {
        self.storyID = storyID
        self.flow = flow
        self.status = status
        self.limit = limit
        self.before = before
    }

    /// Whether `record` passes the filters (not the position).
    public func matches(_ record: RunRecord) -> Bool {
        (storyID == nil || record.storyID == storyID) && (flow == nil || record.flow == flow)
            && (status == nil || record.status == status)
    }
}
