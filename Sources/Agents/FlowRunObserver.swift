/// Hears a run's progress, in order: started, then completed or failed, per agent.
public protocol FlowRunObserver: Sendable {
    func agentStarted(_ agent: String) async
    func agentCompleted(_ agent: String, output: String, duration: Duration) async
    /// After the agent's last attempt; not called when the run is cancelled.
    func agentFailed(_ agent: String, message: String, duration: Duration) async
    /// The agent completed with `step`; by default `agentCompleted`. The engine awaits it
    /// before the next agent starts (a run's journal is written here).
    func stepCompleted(_ step: AgentStep, duration: Duration) async
    /// A piece of an llm agent's output, as its provider streams it (failed attempts' too).
    /// Called on the agent's task for every piece: it must return at once, never wait.
    func agentToken(_ agent: String, _ text: String)
    /// An llm attempt of `agent` reported `usage` (a failed attempt's too); at once, like `agentToken`.
    func agentUsage(_ agent: String, _ usage: TokenUsage)
}

extension FlowRunObserver {
    public func stepCompleted(_ step: AgentStep, duration: Duration) async {
        await agentCompleted(step.agent, output: step.output, duration: duration)
    }

    public func agentToken(_ agent: String, _ text: String) {}

    public func agentUsage(_ agent: String, _ usage: TokenUsage) {}
}
