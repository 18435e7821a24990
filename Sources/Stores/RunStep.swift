import FlowdJSON

/// One completed step of a run, as its journal keeps it: the agent, the prompt it was
/// given (an llm agent's turn goes to its history), its output and the action it returned.
public struct RunStep: Sendable, Hashable {
    public var agent: String
    public var prompt: String
    public var output: String
    /// nil: the default action.
    public var action: String?
    /// What the provider reported over the step's attempts; nil when none did (not an llm
    /// step, or a step a retry took over: it counts for the run that ran it).
    public var usage: RunUsage?

    public init(agent: String, prompt: String, output: String, action: String?, usage: RunUsage? = nil) {
        self.agent = agent
        self.prompt = prompt
        self.output = output
        self.action = action
        self.usage = usage
    }

    /// `{"agent","prompt","output","action"}`, and `"usage"` when it has one.
    public var json: JSONValue {
        var o: JSONObject = ["agent": .string(agent), "prompt": .string(prompt), "output": .string(output),
                             "action": action.map(JSONValue.string) ?? .null]
        if let usage { o["usage"] = usage.json }
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard case .object(let o) = json, case .string(let agent)? = o["agent"], case .string(let prompt)? = o["prompt"],
            case .string(let output)? = o["output"]
        else { return nil }
        switch o["action"] {
        case nil, .null?: action = nil
        case .string(let a)?: action = a
        default: return nil
        }
        switch o["usage"] {
        case nil, .null?: usage = nil
        case let value?:
            guard let usage = RunUsage(json: value) else { return nil }
            self.usage = usage
        }
        self.agent = agent
        self.prompt = prompt
        self.output = output
    }

    /// Appends `json`, without building it.
    public func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"agent":"#.utf8)
        JSONValue.appendString(agent, to: &out)
        out.append(contentsOf: #","prompt":"#.utf8)
        JSONValue.appendString(prompt, to: &out)
        out.append(contentsOf: #","output":"#.utf8)
        JSONValue.appendString(output, to: &out)
        out.append(contentsOf: #","action":"#.utf8)
        if let action { JSONValue.appendString(action, to: &out) } else { out.append(contentsOf: "null".utf8) }
        if let usage {
            out.append(contentsOf: #","usage":"#.utf8)
            usage.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}
