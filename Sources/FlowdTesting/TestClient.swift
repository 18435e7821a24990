/// What a test sends requests through, the same in every mode of the harness: in process
/// through the router (`RouterTestClient`), to a server on a socket (`TestHTTPClient`),
/// or to a `flowd` child process (`FlowdProcess.client`).
///
/// Implementations send exactly the given method, path (with its query) and headers, plus
/// `Content-Length` when there is a body, and return the whole response.
public protocol TestClient: Sendable {
    func execute(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) async throws -> TestResponse
}

extension TestClient {
    public func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> TestResponse {
        try await execute(method, path, headers: headers, body: body)
    }

    public func get(_ path: String, headers: [(String, String)] = []) async throws -> TestResponse {
        try await execute("GET", path, headers: headers, body: nil)
    }

    public func delete(_ path: String, headers: [(String, String)] = []) async throws -> TestResponse {
        try await execute("DELETE", path, headers: headers, body: nil)
    }

    /// Sends `json` (a JSON text) with `Content-Type: application/json`.
    public func post(_ path: String, json: String, headers: [(String, String)] = []) async throws -> TestResponse {
        try await execute("POST", path, headers: [("Content-Type", "application/json")] + headers, body: Array(json.utf8))
    }

    public func put(_ path: String, body: String, headers: [(String, String)] = []) async throws -> TestResponse {
        try await execute("PUT", path, headers: headers, body: Array(body.utf8))
    }
}
