/// A successful run: the last agent's output and every step in order.
public struct FlowOutcome: Sendable {
    public var result: String
    public var steps: [AgentStep]
}
