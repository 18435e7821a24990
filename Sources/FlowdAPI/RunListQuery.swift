import FlowdHTTP
import FlowdJSON
import Stores

/// The query of `GET /runs`, validated: every issue reported at once, as FastAPI would
/// (`loc ["query", name]`); a parameter given twice is an issue too; unknown ones are ignored.
///
/// `flow` must match the identifier pattern, as every configured flow's name does (a name
/// that cannot be a flow is 422); one that matches but is not configured is only a filter:
/// records of a removed flow stay listable, and a name no run has gives an empty list.
enum RunListQuery {
    static let parameters = ["story_id", "flow", "status", "limit", "cursor"]
    static let defaultLimit = 20
    static let maxLimit = 100

    static func decode(_ request: HTTPRequest) throws(HTTPError) -> RunQuery {
        var issues: [ValidationIssue] = []
        var values: [String: String] = [:]
        for name in parameters {
            let given = request.head.query.filter { $0.name == name }
            if given.count > 1 {
                issues.append(ValidationIssue(
                    type: "duplicate_parameter", location: ["query", name], message: "Parameter given more than once",
                    input: .array(given.map { JSONValue.string($0.value) })))
            } else if let value = given.first?.value {
                values[name] = value
            }
        }
        var query = RunQuery(limit: defaultLimit)
        if let story = values["story_id"] {
            if Identifier.isValidID(story) {
                query.storyID = story
            } else {
                issues.append(.patternMismatch(["query", "story_id"], input: story, pattern: RequestValidation.idPattern))
            }
        }
        if let flow = values["flow"] {
            if Identifier.isValidID(flow) {
                query.flow = flow
            } else {
                issues.append(.patternMismatch(["query", "flow"], input: flow, pattern: RequestValidation.idPattern))
            }
        }
        if let text = values["status"] {
            if let status = RunStatus(rawValue: text) {
                query.status = status
            } else {
                let expected = RunStatus.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
                issues.append(ValidationIssue(type: "enum", location: ["query", "status"], message: "Input should be \(expected)",
                                              input: .string(text), context: ["expected": .string(expected)]))
            }
        }
        if let text = values["limit"] {
            if let limit = integer(text) {
                if limit < 1 {
                    issues.append(ValidationIssue(type: "greater_than_equal", location: ["query", "limit"],
                                                  message: "Input should be greater than or equal to 1", input: .string(text),
                                                  context: ["ge": .int(1)]))
                } else if limit > maxLimit {
                    issues.append(ValidationIssue(type: "less_than_equal", location: ["query", "limit"],
                                                  message: "Input should be less than or equal to \(maxLimit)", input: .string(text),
                                                  context: ["le": .int(Int64(maxLimit))]))
                } else {
                    query.limit = limit
                }
            } else {
                issues.append(ValidationIssue(type: "int_parsing", location: ["query", "limit"],
                                              message: "Input should be a valid integer, unable to parse string as an integer",
                                              input: .string(text)))
            }
        }
        if let text = values["cursor"] {
            if let cursor = RunCursor(parsing: text) {
                query.before = cursor
            } else {
                issues.append(.patternMismatch(["query", "cursor"], input: text, pattern: RunCursor.pattern))
            }
        }
        if !issues.isEmpty { throw .unprocessable(issues) }
        return query
    }

    /// An integer as pydantic reads one from a query string: optional sign, ASCII digits,
    /// surrounding whitespace allowed; clamped far outside 1…100 rather than overflowing.
    private static func integer(_ text: String) -> Int? {
        var digits = Substring(text.trimmingASCIISpacesForQuery)
        var negative = false
        if let first = digits.first, first == "+" || first == "-" {
            negative = first == "-"
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        var value = 0
        for b in digits.utf8 {
            value = min(value * 10 + Int(b - UInt8(ascii: "0")), 1_000_000)
        }
        return negative ? -value : value
    }
}

extension String {
    fileprivate var trimmingASCIISpacesForQuery: String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" || first == "\n" || first == "\r" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" || last == "\n" || last == "\r" { view = view.dropLast() }
        return String(view)
    }
}
