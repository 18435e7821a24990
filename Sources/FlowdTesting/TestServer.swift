import FlowdHTTP
import Foundation
import Logging

/// Starts `router` on a free port of 127.0.0.1, runs `body` with a client for it, then
/// cancels what is still running and stops the server, also when `body` throws.
public func withTestServer(
    configure: (inout HTTPServerConfiguration) -> Void = { _ in },
    router: Router,
    _ body: (HTTPServer, TestHTTPClient) async throws -> Void
) async throws {
    let server = makeTestServer(configure: configure, router: router)
    try await server.test(.live) { client in try await body(server, TestHTTPClient(port: server.port)) }
}

/// A server for `router` on a free port of 127.0.0.1, not started: `server.test(mode) { client in … }`.
public func makeTestServer(configure: (inout HTTPServerConfiguration) -> Void = { _ in }, router: Router) -> HTTPServer {
    var configuration = HTTPServerConfiguration()
    configuration.port = 0
    configure(&configuration)
    var logger = Logger(label: "flowd.test")
    logger.logLevel = .warning
    return HTTPServer(configuration: configuration, router: router, logger: logger)
}

/// Time bounds of tests, stretched under instrumentation: `FLOWD_TIME_SCALE` (1 by
/// default; `scripts/tsan` sets 10, since ThreadSanitizer slows everything down).
public func scaled(_ bound: Duration) -> Duration {
    let factor = Double(ProcessInfo.processInfo.environment["FLOWD_TIME_SCALE"] ?? "") ?? 1
    return bound * factor
}
