import FlowdHTTP
import Foundation

/// `GET /`: the web console, one self-contained HTML page with its style and script inline:
/// the file `Resources/console.html`, embedded in the binary (no build step, nothing fetched
/// from anywhere but this server's API) and served byte for byte, but for its nonce markers.
///
/// The page's inline style and script are allowed by a nonce drawn afresh for every response,
/// so the `Content-Security-Policy` can refuse everything else: no other script or style, no
/// inline handler, nothing from another origin, requests only to this server. The script
/// creates elements with DOM calls only (never `innerHTML`), which the page's Trusted Types
/// policy enforces; how it follows a run's events is described in `docs/console.md`. The page
/// holds no data, so `APIKeyGate` lets it through without the key; everything it then asks for
/// needs the key like any other client.
struct ConsoleRoutes: Sendable {
    /// Every occurrence in the file is replaced by the response's CSP nonce.
    static let nonceMarker = "{{NONCE}}"

    /// The page cut at each nonce marker, once: the nonce goes between consecutive pieces.
    private static let pieces: [[UInt8]] = String(decoding: PackageResources.console_html, as: UTF8.self)
        .components(separatedBy: nonceMarker).map { Array($0.utf8) }

    func register(on router: inout Router) {
        router.get("/") { [self] _ in page(nonce: ConsoleRoutes.makeNonce()) }
    }

    func page(nonce: String) -> HTTPResponse {
        var body: [UInt8] = []
        body.reserveCapacity(Self.pieces.reduce(0) { $0 + $1.count } + Self.pieces.count * nonce.utf8.count)
        for (index, piece) in Self.pieces.enumerated() {
            if index > 0 { body.append(contentsOf: nonce.utf8) }
            body.append(contentsOf: piece)
        }
        return HTTPResponse(status: HTTPStatus.ok, headers: ConsoleRoutes.headers(nonce: nonce), body: .bytes(body))
    }

    static func headers(nonce: String) -> HTTPHeaders {
        HTTPHeaders([
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Security-Policy", contentSecurityPolicy(nonce: nonce)),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Cache-Control", "no-cache"),
        ])
    }

    /// Everything refused but the nonced style and script, requests to this origin (`fetch`,
    /// `EventSource`) and the `data:` favicon (which spares the browser a request for
    /// `/favicon.ico`). The script builds the page with DOM calls only, so Trusted Types can
    /// refuse every HTML-string sink too.
    static func contentSecurityPolicy(nonce: String) -> String {
        [
            "default-src 'none'",
            "script-src 'nonce-\(nonce)'",
            "style-src 'nonce-\(nonce)'",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ].joined(separator: "; ")
    }

    /// 128 random bits, base64: a CSP nonce.
    static func makeNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0..<2 {
            let word = generator.next() as UInt64
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return Data(bytes).base64EncodedString()
    }
}
