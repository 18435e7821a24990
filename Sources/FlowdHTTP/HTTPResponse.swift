import FlowdJSON

/// A response: status, headers and either a complete body or a stream.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes([UInt8])
        /// Sent with chunked encoding as the producer writes to it.
        case stream(ResponseStream)
    }

    public var status: Int
    public var headers: HTTPHeaders
    public var body: Body

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON body (already serialised) with `Content-Type: application/json`.
    public static func json(_ status: Int, _ body: [UInt8], headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var headers = headers
        headers.append("Content-Type", "application/json")
        return HTTPResponse(status: status, headers: headers, body: .bytes(body))
    }

    /// FastAPI's error shape, `{"detail":"<message>"}`: the body of every error answer.
    /// U+0008 and U+000C are written `\u0008` and `\u000c`, as these bodies always were
    /// (HTTPResponseTests pins the bytes).
    static func detailBody(_ message: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count + 13)
        out.append(contentsOf: #"{"detail":"#.utf8)
        JSONValue.appendString(message, to: &out, controlEscapes: .unicode)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// FastAPI's error shape: `{"detail": "<message>"}`.
    public static func detail(_ status: Int, _ message: String, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        json(status, detailBody(message), headers: headers)
    }
}

/// An error that says how it is answered: any error type a handler throws may conform,
/// and the server answers it with its status, headers and JSON body (by default FastAPI's
/// `{"detail": "<detail>"}`). Any other error is a 500 that is logged; this is the one place
/// where errors become answers. (Hummingbird's `HTTPResponseError`, in our terms.)
public protocol HTTPResponseError: Error {
    var status: Int { get }
    /// The human-readable reason, `detail` in the body.
    var detail: String { get }
    var headers: HTTPHeaders { get }
    /// The whole JSON body of the answer.
    var body: [UInt8] { get }
}

extension HTTPResponseError {
    public var headers: HTTPHeaders { HTTPHeaders() }
    public var body: [UInt8] { HTTPResponse.detailBody(detail) }
    /// The answer the server sends for it.
    public var response: HTTPResponse { .json(status, body, headers: headers) }
}

/// An error any handler may throw with a status and detail of its choosing.
public struct HTTPError: HTTPResponseError, Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var detail: String
    /// The whole JSON body of the answer.
    public var body: [UInt8]

    public init(_ status: Int, _ detail: String, headers: HTTPHeaders = HTTPHeaders()) {
        self.init(status: status, jsonBody: HTTPResponse.detailBody(detail), headers: headers)
        self.detail = detail
    }

    /// An answer with a body of the caller's making (e.g. a `detail` list).
    public init(status: Int, jsonBody: [UInt8], headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.headers = headers
        self.body = jsonBody
        self.detail = String(decoding: jsonBody, as: UTF8.self)
    }

    /// The same answer as `error`'s.
    public init(_ error: some HTTPResponseError) {
        self.init(status: error.status, jsonBody: error.body, headers: error.headers)
        detail = error.detail
    }
}

/// Reason phrases are left to libmicrohttpd; this names statuses for logs.
public enum HTTPStatus {
    public static let ok = 200, created = 201, accepted = 202, noContent = 204
    public static let badRequest = 400, unauthorized = 401, notFound = 404, methodNotAllowed = 405
    public static let conflict = 409, payloadTooLarge = 413, uriTooLong = 414, unsupportedMediaType = 415
    public static let unprocessable = 422, headerFieldsTooLarge = 431
    public static let internalError = 500, notImplemented = 501, unavailable = 503
}
