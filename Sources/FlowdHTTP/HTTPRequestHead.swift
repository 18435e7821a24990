/// What the router needs of a request before its body has arrived.
public struct HTTPRequestHead: Sendable {
    public var method: String
    /// The path exactly as the client sent it, percent-escapes and all.
    public var rawPath: String
    public var headers: HTTPHeaders
    /// Query parameters, percent-decoded (`+` is a space), in order.
    public var query: [(name: String, value: String)]

    public init(method: String, rawPath: String, headers: HTTPHeaders = HTTPHeaders(), query: [(name: String, value: String)] = []) {
        self.method = method
        self.rawPath = rawPath
        self.headers = headers
        self.query = query
    }

    /// The first value of the query parameter `name`.
    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }
}
