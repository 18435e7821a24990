import FlowdHTTP
import Foundation
import Logging

/// The flowd application: its routes and the state they share. Built once by `flowd serve`.
public final class FlowdApp: Sendable {
    public let configuration: FlowdConfiguration
    public let lifecycle = Lifecycle()
    let logger: Logger

    public init(configuration: FlowdConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Every route of the API.
    public func makeRouter() -> Router {
        var router = Router()
        router.get("/healthz") { _ in Responses.healthy }
        router.get("/readyz") { [self] _ in readiness() }
        return router
    }

    /// The HTTP server for this app, not yet started.
    public func makeServer() -> HTTPServer {
        var http = HTTPServerConfiguration()
        http.host = configuration.host
        http.port = configuration.port
        http.maxBodyBytes = configuration.maxBody
        http.idleTimeoutSeconds = configuration.idleTimeoutSeconds
        http.threads = configuration.httpThreads
        return HTTPServer(configuration: http, router: makeRouter(), logger: logger)
    }

    private func readiness() -> HTTPResponse {
        if lifecycle.isDraining {
            return .detail(HTTPStatus.unavailable, "Draining", headers: Responses.retryAfter)
        }
        guard access(configuration.dataDirectory.path, W_OK) == 0 else {
            return .detail(HTTPStatus.unavailable, "Data directory is not writable", headers: Responses.retryAfter)
        }
        return Responses.ready
    }
}

/// Bodies that never change, serialised once.
enum Responses {
    static let healthy = HTTPResponse.json(HTTPStatus.ok, Array(#"{"status":"ok"}"#.utf8))
    static let ready = HTTPResponse.json(HTTPStatus.ok, Array(#"{"status":"ready"}"#.utf8))
    static let retryAfter = HTTPHeaders([("Retry-After", "1")])
}
