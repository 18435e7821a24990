import FlowdHTTP

/// A client that calls a server's routes in process, with no socket: the request goes
/// through the server's own `Responder` (gate, routing, 404/405, body limit, handler
/// errors), so the answer is the one the server would send, apart from what the wire adds.
///
/// It is the harness's `.router` mode, for API tests that are not about the wire: they
/// need no thread per request and no port, and a loaded machine cannot time them out.
/// Differences from the wire, by design: the framing checks (`RequestFraming`), draining's
/// 503 and the exchange observer (access log, metrics) are the server's and are not run;
/// a streamed body is read to its end before the call returns; a `HEAD` answer has no
/// body; `Content-Length` or `Transfer-Encoding: chunked` is added as libmicrohttpd adds it.
public struct RouterTestClient: TestClient {
    public let responder: Responder
    public var headers: [(String, String)] = []

    public init(responder: Responder) { self.responder = responder }

    public func execute(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) async throws -> TestResponse {
        var fields: [(name: String, value: String)] = [("Host", "127.0.0.1"), ("Connection", "close")]
        fields += (self.headers + headers).map { (name: $0.0, value: $0.1) }
        if let body { fields.append(("Content-Length", "\(body.count)")) }
        let (rawPath, query) = RouterTestClient.split(path)
        let head = HTTPRequestHead(method: method, rawPath: rawPath, headers: HTTPHeaders(fields), query: query)
        let response: HTTPResponse
        switch responder.decide(head) {
        case .answer(let answer, _):
            response = answer
        case .handle(let route, let parameters, let handler, _):
            let request = HTTPRequest(head: head, route: route, parameters: parameters, body: body ?? [])
            response = await responder.respond(to: request, with: handler)
        }
        var responseHeaders = response.headers.fields
        var responseBody: [UInt8]
        switch response.body {
        case .bytes(let bytes):
            responseBody = bytes
            if response.status != 204, response.status != 304 { responseHeaders.append(("Content-Length", "\(bytes.count)")) }
        case .stream(let stream):
            responseBody = await Responder.collect(stream)
            responseHeaders.append(("Transfer-Encoding", "chunked"))
        }
        if method == "HEAD" { responseBody = [] }
        return TestResponse(status: response.status, headers: responseHeaders, body: responseBody)
    }

    /// `/a?b=c` → (`/a`, [(b, c)]), decoded as the server decodes a query (`+` is a space).
    static func split(_ target: String) -> (rawPath: String, query: [(name: String, value: String)]) {
        guard let mark = target.firstIndex(of: "?") else { return (target, []) }
        let query = target[target.index(after: mark)...].split(separator: "&").map { pair -> (name: String, value: String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Router.percentDecoded(parts[0], plusIsSpace: true),
                    parts.count > 1 ? Router.percentDecoded(parts[1], plusIsSpace: true) : "")
        }
        return (String(target[..<mark]), query)
    }
}
