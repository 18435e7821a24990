import Logging

/// What the server answers to a request, apart from the wire: the gate, routing (404, 405
/// with `Allow`), the body limit from `Content-Length`, and a handler's thrown errors as
/// answers.
///
/// `HTTPServer` decides every answer through it, and so does the in-process test harness
/// (`FlowdTesting`'s router mode), so the two cannot drift apart. Invariant: it holds no
/// state of its own; the same head and body always get the same decision.
public struct Responder: Sendable {
    /// What to do with a request once its head is known.
    public enum Decision: Sendable {
        /// Answer at once, without reading the body; `route` is the matched pattern, if any
        /// (a gate's refusal is reported under the route it would have reached).
        case answer(HTTPResponse, route: String?)
        /// Read the body (of at most `maxBodyBytes`; `contentLength` when the head gave it), then call `handler`.
        case handle(route: String, parameters: [String: String], handler: HTTPHandler, contentLength: Int?)
    }

    public let router: Router
    public let gate: (@Sendable (HTTPRequestHead) -> HTTPResponse?)?
    public let maxBodyBytes: Int
    let logger: Logger

    public init(router: Router, gate: (@Sendable (HTTPRequestHead) -> HTTPResponse?)?, maxBodyBytes: Int, logger: Logger) {
        self.router = router
        self.gate = gate
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
    }

    /// The gate, routing and `Content-Length`, in the order of precedence the API promises
    /// (the gate's 401 comes before 404 and 405). The framing checks come before this.
    public func decide(_ head: HTTPRequestHead) -> Decision {
        let match = router.match(method: head.method, rawPath: head.rawPath)
        var route: String?
        if case .found(let pattern, _, _) = match { route = pattern }
        if let gate, let response = gate(head) { return .answer(response, route: route) }
        switch match {
        case .notFound:
            return .answer(.detail(HTTPStatus.notFound, "Not Found"), route: nil)
        case .methodNotAllowed(let allow):
            let headers = HTTPHeaders([("Allow", allow.joined(separator: ", "))])
            return .answer(.detail(HTTPStatus.methodNotAllowed, "Method Not Allowed", headers: headers), route: nil)
        case .found(let pattern, let parameters, let handler):
            let length = head.headers["Content-Length"].flatMap { Int($0.trimmingASCIISpaces) }
            if let length, length > maxBodyBytes { return .answer(Responder.tooLarge(maxBodyBytes), route: pattern) }
            return .handle(route: pattern, parameters: parameters, handler: handler, contentLength: length)
        }
    }

    /// Runs `handler`; whatever it throws becomes its answer (an `HTTPResponseError` its own,
    /// a cancellation 503, anything else a logged 500).
    public func respond(to request: HTTPRequest, with handler: HTTPHandler) async -> HTTPResponse {
        do {
            return try await handler(request)
        } catch let error as any HTTPResponseError {
            return error.response
        } catch is CancellationError {
            return .detail(HTTPStatus.unavailable, "Server is shutting down", headers: HTTPHeaders([("Retry-After", "1")]))
        } catch {
            logger.error("handler failed", metadata: ["route": "\(request.route)", "error": "\(error)"])
            return .detail(HTTPStatus.internalError, "Internal Server Error")
        }
    }

    /// The answer to a body larger than `limit` bytes.
    public static func tooLarge(_ limit: Int) -> HTTPResponse {
        .detail(HTTPStatus.payloadTooLarge, "Request body larger than \(limit) bytes")
    }

    /// Everything a producer writes to `stream` until it finishes it: the body a client
    /// reads, for answering in process without a socket. The stream is then closed as the
    /// server closes it when a response has been sent (its `onClose` handlers run), also
    /// when the calling task is cancelled first.
    public static func collect(_ stream: ResponseStream) async -> [UInt8] {
        // A wake that comes before the wait is kept (one is enough: each read takes all).
        let (wakes, waker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        stream.attach { waker.yield() }
        defer { stream.connectionClosed() }
        var wake = wakes.makeAsyncIterator()
        var body: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            switch buffer.withUnsafeMutableBytes({ stream.read(into: $0, suspend: {}) }) {
            case .bytes(let count):
                body.append(contentsOf: buffer[0..<count])
            case .waiting:
                if await wake.next() == nil { return body }
            case .end, .abort:
                return body
            }
        }
    }
}
