import FlowdJSON
import Stores

/// The OpenAPI 3.1 description of the HTTP API, served as `GET /openapi.json`.
///
/// The document is the file `Resources/openapi.json`, embedded in the binary. It describes what
/// the handlers answer, status by status, error bodies and the SSE answers included, so that a
/// schema-driven fuzzer (`scripts/fuzz-api`) finds nothing against a server whose flows cannot
/// fail; `OpenAPITests` checks its paths against the router's routes. No `servers`: paths are
/// relative to wherever the document was read.
///
/// The file is the document as served with an API key, the configured flows and `--max-input`
/// left for `make` to fill in. Everything else is written there once: the patterns, statuses and
/// limits it repeats from the code are checked against the code by `OpenAPITests`.
public enum OpenAPIDocument {
    /// The document for one configuration; `FlowdApp` builds it once, at start-up.
    ///
    /// - Parameters:
    ///   - flowNames: the configured flows, the `enum` of a run's `flow`.
    ///   - maxInput: `--max-input`, the `maxLength` of a run's `input`.
    ///   - apiKeyRequired: `FLOWD_API_KEY` is set: a bearer token on every route but
    ///     `/healthz`, `/readyz` and `/`, which answer 401 without it. Without a key, the file's
    ///     `security` members, its `securitySchemes` and every 401 answer are taken out.
    public static func make(flowNames: [String], maxInput: Int = 65_536, apiKeyRequired: Bool) -> JSONValue {
        var document = file
        document["components"] = withRunRequest(in: document["components"], flowNames: flowNames, maxInput: maxInput)
        if !apiKeyRequired {
            document["security"] = nil
            document["components"] = removing("securitySchemes", from: document["components"])
            document["paths"] = withoutSecurity(document["paths"])
        }
        return .object(document)
    }

    /// The `Idempotency-Key` header's pattern as JSON Schema (ECMA-262) writes it: 1 to 255
    /// characters of visible ASCII, %x21-7E.
    public static let idempotencyKeyPattern = ValidationIssue.idempotencyKeyPattern

    /// The pattern of `GET /runs`'s `cursor` (a `next_cursor` it answered): the server takes
    /// every string that matches it (`RunCursor.pattern`, where it is written).
    public static let runCursorPattern = RunCursor.pattern

    /// `Resources/openapi.json`, parsed once. A file that does not parse stops the process
    /// before it listens (`FlowdApp.makeRouter` builds the document), and every test run
    /// parses it.
    static let file: JSONObject = {
        do {
            guard case .object(let document) = try JSONValue.parse(PackageResources.openapi_json) else {
                fatalError("Resources/openapi.json is not a JSON object")
            }
            return document
        } catch {
            fatalError("Resources/openapi.json: \(error)")
        }
    }()

    // MARK: - The configured parts

    /// The components with `schemas/RunRequest` (the one schema a configuration changes) given
    /// the configured flows (and `default` when there is a `default` flow, which makes `flow`
    /// optional) and `--max-input`.
    private static func withRunRequest(in components: JSONValue?, flowNames: [String], maxInput: Int) -> JSONValue {
        guard case .object(var components)? = components, case .object(var schemas)? = components["schemas"],
              case .object(var request)? = schemas["RunRequest"], case .object(var properties)? = request["properties"],
              case .object(var flow)? = properties["flow"], case .object(var input)? = properties["input"]
        else { fatalError("Resources/openapi.json has no components/schemas/RunRequest with `flow` and `input`") }
        let defaultFlowExists = flowNames.contains("default")
        flow["enum"] = .array(flowNames.map(JSONValue.string))
        if defaultFlowExists { flow["default"] = "default" }
        input["maxLength"] = .int(Int64(maxInput))
        properties["flow"] = .object(flow)
        properties["input"] = .object(input)
        request["properties"] = .object(properties)
        // Without a `default` flow, a body that names none is 400: then `flow` is required.
        request["required"] = defaultFlowExists ? ["input", "story_id"] : ["flow", "input", "story_id"]
        schemas["RunRequest"] = .object(request)
        components["schemas"] = .object(schemas)
        return .object(components)
    }

    private static func removing(_ key: String, from value: JSONValue?) -> JSONValue? {
        guard case .object(var object)? = value else { return value }
        object[key] = nil
        return .object(object)
    }

    /// Every operation without its `security` (the empty one of the public routes) and its 401.
    private static func withoutSecurity(_ paths: JSONValue?) -> JSONValue? {
        guard case .object(let paths)? = paths else { return paths }
        return .object(JSONObject(paths.map { path, item -> (String, JSONValue) in
            guard case .object(let methods) = item else { return (path, item) }
            return (path, .object(JSONObject(methods.map { method, operation -> (String, JSONValue) in
                guard method != "parameters", case .object(var operation) = operation else { return (method, operation) }
                operation["security"] = nil
                operation["responses"] = removing("401", from: operation["responses"])
                return (method, .object(operation))
            })))
        }))
    }
}
