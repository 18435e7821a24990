import FlowdJSON

/// A response as a test client received it, from the wire or from the router in process.
///
/// `headers` are in the order they were sent; `json` parses `body` with the project's own
/// parser, so a test compares values (`response.json["status"] == "done"`), keys in their
/// order and integers exact, instead of casting Foundation types.
public struct TestResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The first value of the header `name`, compared without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body as JSON; `.null` when it is not JSON (which no comparison with a value
    /// the test expects then passes).
    public var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
}

extension JSONValue {
    /// The integer, as the `Int` tests count with.
    public var int: Int? { intValue.map { Int($0) } }

    /// An array of strings; nil when this is not one.
    public var strings: [String]? {
        guard let array = arrayValue else { return nil }
        let strings = array.compactMap(\.stringValue)
        return strings.count == array.count ? strings : nil
    }

    /// The keys of an object, in their order; empty when this is not one.
    public var keys: [String] { objectValue?.keys ?? [] }

    /// The elements of an array; empty when this is not one.
    public var elements: [JSONValue] { arrayValue ?? [] }
}
