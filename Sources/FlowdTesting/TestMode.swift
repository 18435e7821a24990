import FlowdHTTP

/// How a test reaches the server under test, after Hummingbird's `app.test(.router | .live)`.
///
/// - `router`: the routes are called in process through the server's `Responder`, with no
///   socket (`RouterTestClient`): for the API's behaviour, fast and immune to load.
/// - `live`: the real server on a free port of 127.0.0.1 (`TestHTTPClient`): for framing,
///   streaming, timeouts, connection behaviour and concurrency races.
///
/// The third mode, a `flowd` child process for signal and crash tests, is `FlowdProcess`;
/// its `client` is the same `TestClient` API.
public enum TestMode: Sendable, CaseIterable {
    case router
    case live
}

extension HTTPServer {
    /// Runs `body` with a client for this server (not started yet) in `mode`. In `.live`
    /// mode the server is started on its configured port (0: a free one) and, when `body`
    /// returns or throws, what is still running is cancelled and the server is stopped.
    public func test<Result>(_ mode: TestMode, _ body: (any TestClient) async throws -> Result) async throws -> Result {
        switch mode {
        case .router:
            return try await body(RouterTestClient(responder: responder))
        case .live:
            try start()
            let result: Result
            do {
                result = try await body(TestHTTPClient(port: port))
            } catch {
                cancelInFlight()
                await stop()
                throw error
            }
            cancelInFlight()
            await stop()
            return result
        }
    }
}
