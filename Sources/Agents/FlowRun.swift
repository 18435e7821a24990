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

/// One message of a chat-completions conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

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

/// Tokens an LLM provider reported for a call, or summed over several.
public struct TokenUsage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    public static func + (a: TokenUsage, b: TokenUsage) -> TokenUsage {
        TokenUsage(promptTokens: a.promptTokens &+ b.promptTokens, completionTokens: a.completionTokens &+ b.completionTokens)
    }

    public static func += (a: inout TokenUsage, b: TokenUsage) { a = a + b }
}

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

/// A successful run: the last agent's output and every step in order.
public struct FlowOutcome: Sendable {
    public var result: String
    public var steps: [AgentStep]
}

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

/// Where llm agents send their requests; built by the CLI from `FLOWD_LLM_*`.
public struct LLMConfiguration: Sendable {
    /// Like `http://127.0.0.1:PORT/v1`; `/chat/completions` is appended.
    public var baseURL: String?
    public var apiKey: String?
    /// Used by agents without `model`.
    public var defaultModel: String?

    public init(baseURL: String? = nil, apiKey: String? = nil, defaultModel: String? = nil) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.defaultModel = defaultModel
    }
}

/// An agent's failure inside the engine, carried to `FlowRunError.agentFailed`.
struct AgentFailure: Error, Sendable {
    var agent: String
    var message: String
}
