/// What one run gives its flow.
public struct FlowInput: Sendable {
    public var input: String
    public var storyID: String
    /// Document id → text (already UTF-8, invalid bytes replaced by U+FFFD).
    public var documents: [String: String]
    /// Agent id → its memory from earlier runs of the story.
    public var memory: [String: AgentMemory]

    public init(input: String, storyID: String, documents: [String: String] = [:], memory: [String: AgentMemory] = [:]) {
        self.input = input
        self.storyID = storyID
        self.documents = documents
        self.memory = memory
    }
}
