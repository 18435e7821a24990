import FlowdHTTP
import FlowdJSON
import Stores

extension RequestValidation {
    /// The request's `Idempotency-Key`, if it has one; a bad one is an issue for the 422.
    static func idempotencyKey(_ request: HTTPRequest, issues: inout [ValidationIssue]) -> String? {
        guard let key = request.headers["Idempotency-Key"] else { return nil }
        let bytes = key.utf8
        guard (1...255).contains(bytes.count), bytes.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            issues.append(.badIdempotencyKey(key))
            return nil
        }
        return key
    }
}

extension RequestValidation {
    /// The `tokens` query (`true` or `false`; false when absent); any other value, or the
    /// parameter given twice, is an issue for the 422.
    static func tokensQuery(_ request: HTTPRequest, issues: inout [ValidationIssue]) -> Bool {
        let values = request.head.query.filter { $0.name == "tokens" }.map(\.value)
        switch values {
        case []: return false
        case ["true"]: return true
        case ["false"]: return false
        default:
            let input: JSONValue = values.count == 1 ? .string(values[0]) : .array(values.map(JSONValue.string))
            issues.append(ValidationIssue(type: "bool_parsing", location: ["query", "tokens"],
                                          message: "Input should be 'true' or 'false', given once", input: input))
            return false
        }
    }
}

extension HTTPError {
    /// 422 with FastAPI's `{"detail": [issues]}`.
    static func unprocessable(_ issues: [ValidationIssue]) -> HTTPError {
        let body: JSONValue = ["detail": .array(issues.map(\.json))]
        return HTTPError(status: HTTPStatus.unprocessable, jsonBody: body.serialized())
    }
}

/// Checks of request bodies and path identifiers, in the contract's order of precedence
/// (415, then 400, then 422).
enum RequestValidation {
    static let idPattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
    static let memoryKeyPattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$"

    /// The body as a JSON object: 415 for a type that is not JSON, 400 for malformed JSON
    /// or JSON that is not an object.
    static func jsonObject(_ request: HTTPRequest) throws(HTTPError) -> JSONObject {
        try requireJSONContentType(request)
        let value: JSONValue
        do {
            value = try JSONValue.parse(request.body)
        } catch {
            throw HTTPError(HTTPStatus.badRequest, "Malformed JSON body: \(error)")
        }
        guard case .object(let object) = value else {
            throw HTTPError(HTTPStatus.badRequest, "The JSON body must be an object")
        }
        return object
    }

    /// No `Content-Type`, `application/json` or `application/*+json` (parameters allowed).
    static func requireJSONContentType(_ request: HTTPRequest) throws(HTTPError) {
        guard let contentType = request.headers["Content-Type"] else { return }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces.lowercased() } ?? ""
        if mediaType == "application/json" { return }
        if mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json") && mediaType.count > "application/+json".count { return }
        throw HTTPError(HTTPStatus.unsupportedMediaType, "Unsupported Content-Type '\(contentType)': send application/json")
    }

    /// The path parameter `name`, which must be a valid identifier (422 otherwise).
    static func pathID(_ request: HTTPRequest, _ name: String = "id") throws(HTTPError) -> String {
        let value = request.parameters[name] ?? ""
        guard Identifier.isValidID(value) else {
            throw .unprocessable([.patternMismatch(["path", name], input: value, pattern: idPattern)])
        }
        return value
    }

    /// The `scope` path parameter (422 when it is not one of the three).
    static func pathScope(_ request: HTTPRequest) throws(HTTPError) -> MemoryScope {
        let value = request.parameters["scope"] ?? ""
        guard let scope = MemoryScope(rawValue: value) else { throw .unprocessable([scopeIssue(value)]) }
        return scope
    }

    /// The `scope` and `key` path parameters, both checked, issues reported together.
    static func pathScopeAndKey(_ request: HTTPRequest) throws(HTTPError) -> (MemoryScope, String) {
        let scopeText = request.parameters["scope"] ?? ""
        let key = request.parameters["key"] ?? ""
        let scope = MemoryScope(rawValue: scopeText)
        var issues: [ValidationIssue] = []
        if scope == nil { issues.append(scopeIssue(scopeText)) }
        if !Identifier.isValidMemoryKey(key) { issues.append(.patternMismatch(["path", "key"], input: key, pattern: memoryKeyPattern)) }
        guard issues.isEmpty, let scope else { throw .unprocessable(issues) }
        return (scope, key)
    }

    private static func scopeIssue(_ value: String) -> ValidationIssue {
        let expected = "'isolated', 'shared' or 'global'"
        return ValidationIssue(type: "enum", location: ["path", "scope"], message: "Input should be \(expected)",
                               input: .string(value), context: ["expected": .string(expected)])
    }
}

extension Substring {
    var trimmingSpaces: String {
        var view = self
        while view.first == " " || view.first == "\t" { view = view.dropFirst() }
        while view.last == " " || view.last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
