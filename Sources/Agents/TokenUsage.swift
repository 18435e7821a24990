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
