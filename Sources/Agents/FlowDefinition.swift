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
    /// The flow's transitions as `GET /flows` draws them, in the order written: sources as
    /// `flows.yaml` lists them, each one's actions as written; a sequence's agents each lead to
    /// the next on `default`. Only transitions from the flow's agents (those reached from
    /// `start`): a transition written for an agent the flow never reaches is not part of it.
    public var edges: [FlowEdge]
    /// The engine graph, built once at load time.
    let graph: Flow<RunState>
}
