/// One agent execution of a run.
public struct AgentStep: Sendable, Equatable {
    public var agent: String
    /// The rendered prompt ("" for a mock without one).
    public var prompt: String
    public var output: String
    /// The action it returned (nil: the default one).
    public var action: String?
    /// What the provider reported over the step's attempts (failed ones too); nil when none did.
    public var usage: TokenUsage?

    public init(agent: String, prompt: String, output: String, action: String? = nil, usage: TokenUsage? = nil) {
        self.agent = agent
        self.prompt = prompt
        self.output = output
        self.action = action
        self.usage = usage
    }
}
