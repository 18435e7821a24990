import FlowdJSON

/// LLM tokens a run or a step used, as providers report them:
/// `{"prompt_tokens": N, "completion_tokens": M}`.
public struct RunUsage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    public static func += (a: inout RunUsage, b: RunUsage) {
        a.promptTokens &+= b.promptTokens
        a.completionTokens &+= b.completionTokens
    }

    public var json: JSONValue {
        ["prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens))]
    }

    /// nil unless both counts are integers of at least 0.
    public init?(json: JSONValue) {
        guard case .int(let prompt)? = json["prompt_tokens"], case .int(let completion)? = json["completion_tokens"],
              prompt >= 0, completion >= 0 else { return nil }
        promptTokens = Int(clamping: prompt)
        completionTokens = Int(clamping: completion)
    }

    func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"prompt_tokens":"#.utf8)
        JSONValue.appendInteger(Int64(promptTokens), to: &out)
        out.append(contentsOf: #","completion_tokens":"#.utf8)
        JSONValue.appendInteger(Int64(completionTokens), to: &out)
        out.append(UInt8(ascii: "}"))
    }
}
