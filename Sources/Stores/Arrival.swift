/// What `arrive` did.
public enum Arrival: Sendable, Equatable {
    case arrived
    /// The record's idempotency key was taken by the run with this id; nothing was stored.
    case duplicate(runID: String)
}
