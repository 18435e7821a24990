import FlowdAPI
import FlowdHTTP
import Foundation
import Logging
import ServiceLifecycle

/// The API's HTTP server as a service of `serve`'s group: it serves until the group's graceful
/// shutdown (SIGTERM or SIGINT), then drains and stops, in the order docs/architecture.md
/// ("Shutdown") gives: `/readyz` and new runs 503 → runs and requests finish, up to the drain
/// timeout → what is left is cancelled → the server stops once no connection is suspended.
///
/// It lives here rather than in FlowdHTTP because the drain is the app's (its lifecycle, its
/// runs); FlowdHTTP stays generic and free of ServiceLifecycle.
/// Invariant: the server is started (listening) before the group runs, and `run` returns only
/// after `HTTPServer.stop`, so the services after it in the shutdown order (stores, logs)
/// never see a request.
struct HTTPService: Service {
    let server: HTTPServer
    let app: FlowdApp
    let drainTimeout: Duration
    /// Said on stdout once the group runs, so that a client (or a test) that reads it knows
    /// SIGTERM and SIGINT are already taken by the group.
    let listening: String
    let logger: Logger

    func run() async throws {
        print(listening)
        fflush(nil)
        // Cancelled instead (the group gave up): the same steps, with no time to wait.
        try? await gracefulShutdown()
        await drainAndStop()
    }

    private func drainAndStop() async {
        logger.info("draining", metadata: ["requests": "\(server.inFlightCount)", "runs": "\(app.runs.runsInFlight)"])
        // Probes and new runs answer 503 from here on; what is going on may finish.
        app.lifecycle.beginDrain()
        let deadline = ContinuousClock.now + drainTimeout
        let runsDone = await app.runs.waitForRuns(timeout: deadline - ContinuousClock.now)
        let requestsDone = await server.waitForInFlight(timeout: max(.zero, deadline - ContinuousClock.now))
        if !runsDone || !requestsDone {
            logger.warning("drain timeout: cancelling what is left",
                           metadata: ["requests": "\(server.inFlightCount)", "runs": "\(app.runs.runsInFlight)"])
            app.runs.cancelAll()
            server.cancelInFlight()
            _ = await app.runs.waitForRuns(timeout: .seconds(10))
            _ = await server.waitForInFlight(timeout: .seconds(10))
        }
        // Only once no connection is suspended: libmicrohttpd 0.9.75 aborts otherwise.
        await server.stop()
    }
}
