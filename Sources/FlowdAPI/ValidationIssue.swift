import FlowdJSON
import Stores

/// One entry of a FastAPI/pydantic-style 422 `detail` list.
struct ValidationIssue: Sendable {
    var type: String
    var location: [String]
    var message: String
    var input: JSONValue?
    var context: JSONObject?

    var json: JSONValue {
        var object: JSONObject = ["type": .string(type), "loc": .array(location.map(JSONValue.string)), "msg": .string(message)]
        if let input { object["input"] = input }
        if let context { object["ctx"] = .object(context) }
        return .object(object)
    }

    static func missing(_ location: [String], input: JSONValue?) -> ValidationIssue {
        ValidationIssue(type: "missing", location: location, message: "Field required", input: input)
    }

    static func notAString(_ location: [String], input: JSONValue) -> ValidationIssue {
        ValidationIssue(type: "string_type", location: location, message: "Input should be a valid string", input: input)
    }

    static func patternMismatch(_ location: [String], input: String, pattern: String) -> ValidationIssue {
        ValidationIssue(type: "string_pattern_mismatch", location: location,
                        message: "String should match pattern '\(pattern)'", input: .string(input),
                        context: ["pattern": .string(pattern)])
    }

    /// `Idempotency-Key`: 1 to 255 characters of visible ASCII.
    static let idempotencyKeyPattern = "^[!-~]{1,255}$"

    static func badIdempotencyKey(_ key: String) -> ValidationIssue {
        patternMismatch(["header", "idempotency-key"], input: key, pattern: idempotencyKeyPattern)
    }

    /// The key came with another request before.
    static func idempotencyKeyReused(_ key: String) -> ValidationIssue {
        ValidationIssue(type: "idempotency_key_reused", location: ["header", "idempotency-key"],
                        message: "Idempotency-Key was used for another request", input: .string(key))
    }

    static func tooLong(_ location: [String], input: String, maxLength: Int) -> ValidationIssue {
        ValidationIssue(type: "string_too_long", location: location,
                        message: "String should have at most \(maxLength) characters", input: .string(input),
                        context: ["max_length": .int(Int64(maxLength))])
    }
}
