/// Where a run stands. `queued` and `running` are live; the others are final.
public enum RunStatus: String, Sendable, CaseIterable, Hashable {
    case queued, running, succeeded
    case pendingDocs = "pending_docs"
    case failed, cancelled

    /// True for the final states: `succeeded`, `pending_docs`, `failed`, `cancelled`.
    public var isFinished: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .pendingDocs, .failed, .cancelled: true
        }
    }
}
