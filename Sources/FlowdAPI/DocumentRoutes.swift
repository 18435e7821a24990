import FlowdHTTP
import FlowdJSON
import Stores

/// `/docs/{id}` and the original service's `/doc/{id}` routes.
struct DocumentRoutes: Sendable {
    let documents: any DocumentStore

    func register(on router: inout Router) {
        router.get("/docs") { _ in try await list() }
        router.put("/docs/{id}") { request in try await put(request) }
        router.get("/docs/{id}") { request in try await get(request) }
        router.delete("/docs/{id}") { request in try await delete(request) }
        router.put("/doc/{id}") { request in try await putCompatible(request) }
        router.get("/doc/{id}") { request in try await get(request) }
        router.get("/doc/{id}/status") { request in try await status(request) }
    }

    private func list() async throws -> HTTPResponse {
        let entries = try await documents.list()
        let docs = entries.map { JSONValue.object(["id": .string($0.id), "bytes": .int(Int64($0.bytes))]) }
        return .json(HTTPStatus.ok, ["docs": .array(docs)])
    }

    /// The body is the document, whatever its content type.
    private func put(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try RequestValidation.pathID(request)
        let created = try await documents.put(id, request.body)
        return .json(created ? HTTPStatus.created : HTTPStatus.ok, ["id": .string(id), "bytes": .int(Int64(request.body.count))])
    }

    private func get(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try RequestValidation.pathID(request)
        guard let bytes = try await documents.get(id) else { throw HTTPError.notFound("Document '\(id)' not found") }
        return HTTPResponse(status: HTTPStatus.ok, headers: HTTPHeaders([("Content-Type", "text/markdown; charset=utf-8")]), body: .bytes(bytes))
    }

    private func delete(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try RequestValidation.pathID(request)
        guard try await documents.delete(id) else { throw HTTPError.notFound("Document '\(id)' not found") }
        return .noContent
    }

    /// `PUT /doc/{id}` with `{"content": "…"}` → `{"message": "Document saved", "id"}`.
    private func putCompatible(_ request: HTTPRequest) async throws -> HTTPResponse {
        let body = try RequestValidation.jsonObject(request)
        let id = try RequestValidation.pathID(request)
        guard let content = body["content"] else { throw HTTPError.unprocessable([.missing(["body", "content"], input: .object(body))]) }
        guard case .string(let text) = content else { throw HTTPError.unprocessable([.notAString(["body", "content"], input: content)]) }
        _ = try await documents.put(id, Array(text.utf8))
        return .json(HTTPStatus.ok, ["message": "Document saved", "id": .string(id)])
    }

    private func status(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try RequestValidation.pathID(request)
        return .json(HTTPStatus.ok, ["exists": .bool(try await documents.exists(id))])
    }
}
