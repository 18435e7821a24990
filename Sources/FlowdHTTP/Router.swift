/// Answers one request; thrown `HTTPError`s become `{"detail": …}` answers.
public typealias HTTPHandler = @Sendable (HTTPRequest) async throws -> HTTPResponse

/// Routes on method + raw path. Patterns are `/`-separated literals and `{name}` parameters.
///
/// The raw path is split into segments first and each segment is percent-decoded on its own,
/// so `%2F` or `%00` inside a segment stay inside that one parameter (the handler validates it)
/// and can never make a path with other segments. Escapes of unreserved characters (letters,
/// digits, `-._~`) are decoded in every segment before matching (RFC 3986, 6.2.2.2), so
/// `/%68ealthz` is `/healthz`; other escapes never match a literal segment.
public struct Router: Sendable {
    /// The outcome of matching a request head.
    public enum Match: Sendable {
        case found(route: String, parameters: [String: String], handler: HTTPHandler)
        case notFound
        case methodNotAllowed(allow: [String])
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    /// A method on a pattern, as registered: what `routes` lists.
    public struct RegisteredRoute: Sendable, Hashable, CustomStringConvertible {
        public let method: String
        public let pattern: String

        public var description: String { "\(method) \(pattern)" }
    }

    private struct Route: Sendable {
        let pattern: String
        let segments: [Segment]
        var handlers: [String: HTTPHandler]
    }

    /// One entry per pattern, in the order the patterns were first registered: `match` tries them in this order.
    private var table: [Route] = []

    /// Every method and pattern registered, each once, in registration order (registering one
    /// again replaces its handler, not its place). `HEAD` is listed only where it was registered
    /// itself, though `match` answers it with the `GET` handler wherever there is one.
    public private(set) var routes: [RegisteredRoute] = []

    public init() {}

    /// Registers `handler` for `method` on `pattern` (e.g. `/docs/{id}`).
    public mutating func on(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        if let index = table.firstIndex(where: { $0.pattern == pattern }) {
            if table[index].handlers.updateValue(handler, forKey: method) == nil {
                routes.append(RegisteredRoute(method: method, pattern: pattern))
            }
            return
        }
        let segments = Router.split(pattern).map { part -> Segment in
            let part = String(part)
            return part.hasPrefix("{") && part.hasSuffix("}") ? Segment.parameter(String(part.dropFirst().dropLast())) : Segment.literal(part)
        }
        table.append(Route(pattern: pattern, segments: segments, handlers: [method: handler]))
        routes.append(RegisteredRoute(method: method, pattern: pattern))
    }

    public mutating func get(_ pattern: String, _ handler: @escaping HTTPHandler) { on("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping HTTPHandler) { on("POST", pattern, handler) }
    public mutating func put(_ pattern: String, _ handler: @escaping HTTPHandler) { on("PUT", pattern, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping HTTPHandler) { on("DELETE", pattern, handler) }

    /// Finds the route for a method and a raw (undecoded) path. `HEAD` falls back to `GET`.
    public func match(method: String, rawPath: String) -> Match {
        let parts = Router.split(rawPath).map(Router.unreservedDecoded)
        var allowed: [String] = []
        for route in table where route.segments.count == parts.count {
            var parameters: [String: String] = [:]
            var matches = true
            for (segment, part) in zip(route.segments, parts) {
                switch segment {
                case .literal(let literal):
                    if literal != part { matches = false }
                case .parameter(let name):
                    if part.isEmpty { matches = false } else { parameters[name] = Router.percentDecoded(part) }
                }
                if !matches { break }
            }
            guard matches else { continue }
            if let handler = route.handlers[method] ?? (method == "HEAD" ? route.handlers["GET"] : nil) {
                return .found(route: route.pattern, parameters: parameters, handler: handler)
            }
            allowed.append(contentsOf: route.handlers.keys)
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") { allowed.append("HEAD") }
        return .methodNotAllowed(allow: Array(Set(allowed)).sorted())
    }

    /// `"/a/b"` → `["a", "b"]`; `"/"` → `[""]`. The leading slash is dropped, nothing is decoded.
    static func split(_ path: String) -> [Substring] {
        var path = Substring(path)
        if path.hasPrefix("/") { path = path.dropFirst() }
        return path.split(separator: "/", omittingEmptySubsequences: false)
    }

    /// Decodes the escapes of unreserved characters (`%68` → `h`) and leaves every other
    /// escape as it is, so the segment is still undecoded where it matters (`%2F`, `%00`, `%25`).
    static func unreservedDecoded(_ segment: Substring) -> Substring {
        guard segment.utf8.contains(UInt8(ascii: "%")) else { return segment }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(segment.utf8.count)
        let source = Array(segment.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "%"), index + 2 < source.count,
               let high = hexValue(source[index + 1]), let low = hexValue(source[index + 2]),
               isUnreserved(high << 4 | low) {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return Substring(String(decoding: bytes, as: UTF8.self))
    }

    private static func isUnreserved(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// Decodes `%XX` escapes (invalid escapes stay as they are); bytes that are not UTF-8 become U+FFFD.
    public static func percentDecoded(_ text: Substring, plusIsSpace: Bool = false) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let high = hexValue(iterator[iterator.startIndex]),
               let low = hexValue(iterator[iterator.startIndex + 1]) {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else if plusIsSpace && byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
