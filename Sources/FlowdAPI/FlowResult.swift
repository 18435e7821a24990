import Stores

/// What a run's flow came to, before anything of it is written.
public enum FlowResult: Sendable {
    /// It ended without a success (pending documents, a failure, a cancel): nothing to write.
    case ended(RunOutcome)
    /// It succeeded with `result`; `memory` is its story's contexts to commit.
    case succeeded(result: String, memory: MemoryTransaction)
}
