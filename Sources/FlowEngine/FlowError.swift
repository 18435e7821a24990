/// Errors the engine itself raises; errors of nodes propagate unchanged.
public enum FlowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `step` would have been step `maxSteps + 1` of one run.
    case maxStepsExceeded(step: String, maxSteps: Int)
    /// A resumed run's path names `step` as its step `position`, where the flow has another.
    case pathMismatch(step: String, position: Int)

    public var description: String {
        switch self {
        case let .maxStepsExceeded(step, maxSteps): "\(step): max_steps (\(maxSteps)) exceeded"
        case let .pathMismatch(step, position): "\(step): step \(position) of the journal is not where the flow goes (the flow changed)"
        }
    }
}
