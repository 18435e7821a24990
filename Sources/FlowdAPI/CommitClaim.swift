import Stores

/// Whether a run that succeeded commits: decided atomically with any cancel of it.
public enum CommitClaim: Sendable {
    /// A cancel came first: the run ends cancelled and writes nothing.
    case cancelled
    /// Commit, the run's finish in the same durable unit as its memory.
    case commit(RunFinish)
}
