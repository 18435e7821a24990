/// What to do with the runs an earlier process left unfinished (`--on-restart`).
public enum RestartPolicy: String, Sendable, CaseIterable {
    /// Go on from the step after the last journaled one.
    case resume
    /// End them `failed` (`RunFinish.interrupted`).
    case fail
}
