/// A whole request as a handler sees it: head, decoded path parameters and the complete body.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    /// The route pattern that matched, e.g. `/docs/{id}` (for logs and metrics).
    public var route: String
    /// Path parameters, each one percent-decoded segment (it may contain `/` or NUL: validate it).
    public var parameters: [String: String]
    public var body: [UInt8]

    public init(head: HTTPRequestHead, route: String, parameters: [String: String] = [:], body: [UInt8] = []) {
        self.head = head
        self.route = route
        self.parameters = parameters
        self.body = body
    }

    public var method: String { head.method }
    public var headers: HTTPHeaders { head.headers }
}
