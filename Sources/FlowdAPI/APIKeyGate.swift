import FlowdHTTP

/// `FLOWD_API_KEY`: every route but `/healthz`, `/readyz` and the console page `GET /` needs
/// `Authorization: Bearer <key>`; otherwise 401 with `WWW-Authenticate: Bearer`, before any
/// 404 or 405. The key is compared in constant time.
struct APIKeyGate: Sendable {
    let key: [UInt8]

    init(key: String) { self.key = Array(key.utf8) }

    static let open: Set<String> = ["/healthz", "/readyz", "/"]

    func check(_ head: HTTPRequestHead) -> HTTPResponse? {
        if (head.method == "GET" || head.method == "HEAD"), APIKeyGate.open.contains(head.rawPath) { return nil }
        if let authorization = head.headers["Authorization"], authorization.utf8.count > 7,
           authorization.prefix(7).lowercased() == "bearer ",
           APIKeyGate.constantTimeEqual(Array(authorization.utf8.dropFirst(7)), key) {
            return nil
        }
        return .detail(HTTPStatus.unauthorized, "Not authenticated", headers: HTTPHeaders([("WWW-Authenticate", "Bearer")]))
    }

    /// Looks at every byte of the longer input whatever the first difference.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}
