/// Why a run did not succeed.
public enum FlowRunError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The agent failed after its retries, timed out, could not render, or would
    /// have run past `max_steps`; `description` is "<agent>: <message>".
    case agentFailed(agent: String, message: String)
    case cancelled

    public var description: String {
        switch self {
        case let .agentFailed(agent, message): "\(agent): \(message)"
        case .cancelled: "Run cancelled"
        }
    }
}
