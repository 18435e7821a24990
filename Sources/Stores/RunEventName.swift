/// The events a run emits, by name (the SSE `event:`): `progress` and `result` while it
/// goes, then exactly one terminal event, `done`, `error` or `cancelled`, last.
public enum RunEventName {
    public static let progress = "progress"
    public static let result = "result"
    /// The run succeeded, or ended with documents pending: `{"result","pending_docs","run_id"}`.
    public static let done = "done"
    /// The run failed: `{"run_id","status","detail"}`, `status` being the code its `/run` answered.
    public static let error = "error"
    public static let cancelled = "cancelled"

    /// The names that end a run's events.
    public static let terminal: Set<String> = [done, error, cancelled]
}
