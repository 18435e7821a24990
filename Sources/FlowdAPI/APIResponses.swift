import FlowdHTTP
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
