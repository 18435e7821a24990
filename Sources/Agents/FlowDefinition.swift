import FlowEngine

/// One flow of `agents/flows.yaml`, validated against the catalog's agents.
///
/// `agentIDs` and `requiredDocuments` are "in flow order": agents visited
/// breadth-first from the start, transitions in the order written.
public struct FlowDefinition: Sendable {
    public var name: String
    public var agentIDs: [String]
    public var requiredDocuments: [String]
    public var maxSteps: Int
    /// The start agent.
    public var start: String
    /// Per agent, its actions in the order written; a `nil` target is `end`.
    public var transitions: [String: [(action: String, target: String?)]]
    /// The engine graph, built once at load time.
    let graph: Flow<RunState>
}
