import FlowdHTTP
import FlowdJSON
import Stores

extension HTTPResponse {
    /// `value` serialised as the JSON body.
    static func json(_ status: Int, _ value: JSONValue, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        .json(status, value.serialized(), headers: headers)
    }

    static let noContent = HTTPResponse(status: HTTPStatus.noContent)
}

extension HTTPError {
    /// 503 with `Retry-After`: too busy, or draining.
    static func unavailable(_ detail: String) -> HTTPError {
        HTTPError(HTTPStatus.unavailable, detail, headers: HTTPHeaders([("Retry-After", "1")]))
    }

    static func notFound(_ detail: String) -> HTTPError {
        HTTPError(HTTPStatus.notFound, detail)
    }
}

/// How a storage failure is answered, wherever it surfaces (a route, a run's end): 503 with
/// `Retry-After` while the storage cannot be reached (nothing was stored; try again), 500
/// for any other failure.
extension StoreError: HTTPResponseError {
    public var status: Int { kind == .unavailable ? HTTPStatus.unavailable : HTTPStatus.internalError }
    public var detail: String { kind == .unavailable ? "Storage unavailable: \(self)" : "Storage failed: \(self)" }
    public var headers: HTTPHeaders { kind == .unavailable ? HTTPHeaders([("Retry-After", "1")]) : HTTPHeaders() }
}
