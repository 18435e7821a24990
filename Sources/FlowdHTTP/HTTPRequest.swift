/// The header fields of a request, in arrival order; names compare case-insensitively.
public struct HTTPHeaders: Sendable, Sequence {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)] = []) {
        self.fields = fields
    }

    /// The first value of `name`, compared without regard to ASCII case.
    public subscript(_ name: String) -> String? {
        for field in fields where HTTPHeaders.equalIgnoringASCIICase(field.name, name) {
            return field.value
        }
        return nil
    }

    static func equalIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        for (x, y) in zip(a.utf8, b.utf8) where x != y {
            let lowerX = x >= 65 && x <= 90 ? x | 0x20 : x
            let lowerY = y >= 65 && y <= 90 ? y | 0x20 : y
            if lowerX != lowerY { return false }
        }
        return true
    }

    public mutating func append(_ name: String, _ value: String) {
        fields.append((name, value))
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        fields.makeIterator()
    }
}

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
