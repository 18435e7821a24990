import FlowdHTTP
import FlowdJSON
import Stores

/// `/memory/{scope}/{key}` and `/memory/{scope}?prefix=`: memory for debugging and operators.
struct MemoryRoutes: Sendable {
    let memory: any MemoryStore

    func register(on router: inout Router) {
        router.get("/memory/{scope}") { request in try await list(request) }
        router.get("/memory/{scope}/{key}") { request in try await get(request) }
        router.put("/memory/{scope}/{key}") { request in try await put(request) }
        router.delete("/memory/{scope}/{key}") { request in try await delete(request) }
    }

    private func list(_ request: HTTPRequest) async throws -> HTTPResponse {
        let scope = try RequestValidation.pathScope(request)
        let entries = try await memory.list(scope, prefix: request.head.queryValue("prefix") ?? "")
        let json = entries.map { JSONValue.object(["key": .string($0.key), "value": $0.value]) }
        return .json(HTTPStatus.ok, ["scope": .string(scope.rawValue), "entries": .array(json)])
    }

    private func get(_ request: HTTPRequest) async throws -> HTTPResponse {
        let (scope, key) = try RequestValidation.pathScopeAndKey(request)
        guard let value = try await memory.get(scope, key) else { throw HTTPError.notFound("No memory at \(scope.rawValue)/\(key)") }
        return .json(HTTPStatus.ok, ["scope": .string(scope.rawValue), "key": .string(key), "value": value])
    }

    /// Body `{"value": <any JSON>}`; durable before the answer.
    private func put(_ request: HTTPRequest) async throws -> HTTPResponse {
        let body = try RequestValidation.jsonObject(request)
        let (scope, key) = try RequestValidation.pathScopeAndKey(request)
        guard let value = body["value"] else { throw HTTPError.unprocessable([.missing(["body", "value"], input: .object(body))]) }
        try await memory.set(scope, key, value)
        return .json(HTTPStatus.ok, ["scope": .string(scope.rawValue), "key": .string(key), "value": value])
    }

    private func delete(_ request: HTTPRequest) async throws -> HTTPResponse {
        let (scope, key) = try RequestValidation.pathScopeAndKey(request)
        guard try await memory.delete(scope, key) else { throw HTTPError.notFound("No memory at \(scope.rawValue)/\(key)") }
        return .noContent
    }
}
