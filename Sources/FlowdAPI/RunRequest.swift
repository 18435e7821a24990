import Agents
import FlowdHTTP
import Stores

/// A validated `/run` (or `/runs`) body: `{"flow"?, "input", "story_id"}`; unknown fields ignored.
public struct RunRequest: Sendable {
    public var flow: String
    public var input: String
    public var storyID: String
    /// The `Idempotency-Key` header, valid when present.
    public var idempotencyKey: String?
    /// The `tokens=true` query of a streamed `/run`: the client gets `token` events.
    var tokens = false

    public init(flow: String = "default", input: String, storyID: String, idempotencyKey: String? = nil) {
        self.flow = flow
        self.input = input
        self.storyID = storyID
        self.idempotencyKey = idempotencyKey
    }

    /// Parses and checks a body: 415, 400 (not JSON, not an object), 422 with every field
    /// issue (and a bad `Idempotency-Key`) at once, then 400 for an unknown flow (naming the configured ones): the original
    /// service's handler saw only valid bodies.
    /// `tokensQuery`: the route takes the `tokens` query (checked with the body's fields).
    static func decode(_ request: HTTPRequest, catalog: AgentCatalog, maxInput: Int,
                       tokensQuery: Bool = false) throws(HTTPError) -> RunRequest {
        let body = try RequestValidation.jsonObject(request)
        var issues: [ValidationIssue] = []

        var flow = "default"
        switch body["flow"] {
        case nil: break
        case .string(let name)?:
            flow = name
        case let other?:
            issues.append(.notAString(["body", "flow"], input: other))
        }

        var input = ""
        switch body["input"] {
        case nil: issues.append(.missing(["body", "input"], input: .object(body)))
        case .string(let text)?:
            if text.unicodeScalars.count > maxInput {
                issues.append(.tooLong(["body", "input"], input: text, maxLength: maxInput))
            }
            input = text
        case let other?: issues.append(.notAString(["body", "input"], input: other))
        }

        var storyID = ""
        switch body["story_id"] {
        case nil: issues.append(.missing(["body", "story_id"], input: .object(body)))
        case .string(let id)?:
            if !Identifier.isValidID(id) {
                issues.append(.patternMismatch(["body", "story_id"], input: id, pattern: RequestValidation.idPattern))
            }
            storyID = id
        case let other?: issues.append(.notAString(["body", "story_id"], input: other))
        }

        let key = RequestValidation.idempotencyKey(request, issues: &issues)
        let tokens = tokensQuery && RequestValidation.tokensQuery(request, issues: &issues)

        if !issues.isEmpty {
            // A long input is not echoed back whole.
            throw HTTPError.unprocessable(issues.map { issue in
                var issue = issue
                if case .string(let text)? = issue.input, text.utf8.count > 1024 { issue.input = nil }
                if case .object? = issue.input, request.body.count > 4096 { issue.input = nil }
                return issue
            })
        }
        guard catalog.flow(named: flow) != nil else {
            throw HTTPError(HTTPStatus.badRequest, "Unknown flow '\(flow)'; flows: \(catalog.flowNames.joined(separator: ", "))")
        }
        var run = RunRequest(flow: flow, input: input, storyID: storyID, idempotencyKey: key)
        run.tokens = tokens
        return run
    }
}
