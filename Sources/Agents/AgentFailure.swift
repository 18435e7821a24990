/// An agent's failure inside the engine, carried to `FlowRunError.agentFailed`.
struct AgentFailure: Error, Sendable {
    var agent: String
    var message: String
}
