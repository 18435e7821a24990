/// The checks of a request head that come before routing (RFC 9112), made on the headers
/// alone, before any body byte is read.
///
/// A head whose message framing cannot be trusted (conflicting `Content-Length`s, a transfer
/// coding other than a plain `chunked`, whitespace before a header's colon) is answered with
/// `Connection: close`: bytes after it could be read as another request (request smuggling).
/// Only what libmicrohttpd lets through reaches these checks; see the server's notes.
struct RequestFraming: Sendable {
    /// The request line and header block, in bytes; a larger head is 431.
    var maxHeadBytes: Int
    /// The request target (path and query), in bytes; a longer one is 414.
    var maxURLBytes: Int

    /// What the server saw of a request head.
    struct Head {
        var version: String
        var headers: HTTPHeaders
        /// Bytes of the request line and the header block (0 when libmicrohttpd did not say).
        var headBytes: Int
        /// Bytes of the request target as sent.
        var urlBytes: Int
    }

    /// The answer to a head that must not be routed, or nil when it may be.
    func answer(to head: Head) -> HTTPResponse? {
        if head.urlBytes > maxURLBytes {
            return RequestFraming.closing(HTTPStatus.uriTooLong, "URL longer than \(maxURLBytes) bytes")
        }
        if head.headBytes > maxHeadBytes {
            return RequestFraming.closing(HTTPStatus.headerFieldsTooLarge, "Request head larger than \(maxHeadBytes) bytes")
        }
        var hosts = 0
        var codings: [String] = []
        var lengths: [String] = []
        for field in head.headers {
            if field.name.utf8.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
                return RequestFraming.closing(HTTPStatus.badRequest, "Whitespace in the header name '\(field.name)'")
            }
            if HTTPHeaders.equalIgnoringASCIICase(field.name, "Host") {
                hosts += 1
            } else if HTTPHeaders.equalIgnoringASCIICase(field.name, "Transfer-Encoding") {
                codings.append(field.value)
            } else if HTTPHeaders.equalIgnoringASCIICase(field.name, "Content-Length") {
                lengths.append(field.value)
            }
        }
        if !codings.isEmpty {
            // libmicrohttpd decodes chunked only for this exact value of the first field, and
            // reads any other body until the connection closes: an answer would never come.
            guard codings.count == 1, HTTPHeaders.equalIgnoringASCIICase(codings[0], "chunked") else {
                let listed = codings.joined(separator: ", ")
                return RequestFraming.closing(HTTPStatus.notImplemented, "Transfer-Encoding '\(listed)' is not implemented; only chunked is")
            }
            if !lengths.isEmpty {
                return RequestFraming.closing(HTTPStatus.badRequest, "Both Transfer-Encoding and Content-Length")
            }
        }
        if !lengths.isEmpty {
            // libmicrohttpd has already refused a first value that is not one number; the
            // others (and lists) must all be that number too.
            var values = Set<String>()
            for element in lengths.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
                let value = String(element).trimmingASCIISpaces
                guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                    return RequestFraming.closing(HTTPStatus.badRequest, "Invalid Content-Length '\(value)'")
                }
                values.insert(String(value.drop { $0 == "0" }))
            }
            if values.count > 1 {
                return RequestFraming.closing(HTTPStatus.badRequest, "Conflicting Content-Length values")
            }
        }
        if hosts > 1 {
            return .detail(HTTPStatus.badRequest, "More than one Host header")
        }
        if hosts == 0 && head.version != "HTTP/1.0" {
            // libmicrohttpd passes on HTTP/1.0 to 1.9 only; all but 1.0 need a Host (RFC 9112, 3.2).
            return .detail(HTTPStatus.badRequest, "Missing Host header")
        }
        return nil
    }

    /// A `{"detail": …}` answer after which the connection is closed.
    static func closing(_ status: Int, _ message: String) -> HTTPResponse {
        .detail(status, message, headers: HTTPHeaders([("Connection", "close")]))
    }
}
