import Foundation

/// One agent, as loaded and validated from `agents/<id>.yaml`.
///
/// Every field has passed validation: the prompt is parsed, the routes'
/// regular expressions compile, kind-specific fields are set only for their kind.
public struct AgentDefinition: Sendable {
    /// What runs in `exec`.
    public enum Kind: String, Sendable, CaseIterable {
        case template, llm, mock
    }

    public var id: String
    public var kind: Kind
    public var description: String?
    /// The file it came from, as problems name it.
    public var file: String
    /// `requires` as written.
    public var requires: [String]
    public var prompt: PromptTemplate?
    /// Attempts in total (1: no retry).
    public var maxRetries: Int = 1
    /// Seconds between attempts.
    public var wait: Double = 0
    /// Seconds for one attempt.
    public var timeout: Double = 300
    public var routes: [Route] = []
    // mock
    public var delayMilliseconds: Int = 0
    public var fail: String?
    public var failAttempts: Int = 0
    public var output: String?
    // llm
    public var model: String?
    public var system: String?

    /// `requires` and then the documents the prompt names, each once.
    public var requiredDocuments: [String] {
        unique(requires + (prompt?.documentIDs ?? []))
    }

    /// The action for `output`: the first route that matches, else `nil` ("default").
    func action(for output: String) -> String? {
        guard !routes.isEmpty else { return nil }
        return routes.first { $0.matches(output) }?.action
    }
}
