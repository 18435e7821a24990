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
