import FlowdHTTP

/// Bodies that never change, serialised once.
enum Responses {
    static let healthy = HTTPResponse.json(HTTPStatus.ok, Array(#"{"status":"ok"}"#.utf8))
    static let ready = HTTPResponse.json(HTTPStatus.ok, Array(#"{"status":"ready"}"#.utf8))
    static let retryAfter = HTTPHeaders([("Retry-After", "1")])
}
