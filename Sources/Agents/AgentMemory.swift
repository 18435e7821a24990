/// One agent's memory of a story, from earlier runs.
public struct AgentMemory: Sendable {
    public var lastOutput: String?
    /// Earlier turns of an llm agent, oldest first.
    public var history: [ChatMessage]

    public init(lastOutput: String? = nil, history: [ChatMessage] = []) {
        self.lastOutput = lastOutput
        self.history = history
    }
}
