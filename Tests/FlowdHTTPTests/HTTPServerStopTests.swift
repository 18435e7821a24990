@testable import FlowdHTTP
import FlowdTesting
import Foundation
import Synchronization
import Testing

/// `HTTPServer.stop` against libmicrohttpd 0.9.75, which aborts the process when stopped with
/// a suspended connection: stop must wait for it, and be woken (not poll) when it ends.
@Suite("HTTP server stop")
struct HTTPServerStopTests {
    @Test func stopWaitsForASuspendedStreamAndReturnsSoonAfterItEnds() async throws {
        var router = Router()
        let stream = ResponseStream()
        router.get("/wait") { _ in
            stream.write(": open\n\n")
            return HTTPResponse(status: 200, body: .stream(stream))
        }
        try await withTestServer(router: router) { server, client in
            let reader = Task { try await client.get("/wait") }
            // The handler has returned and the stream's connection is suspended, waiting for data.
            let deadline = ContinuousClock.now + .seconds(30)
            while !(server.inFlightCount == 0 && server.suspendedCount == 1 && stream.unsentBytes == 0) {
                try #require(ContinuousClock.now < deadline, "the stream never waited")
                try await Task.sleep(for: .milliseconds(5))
            }
            let stopped = Stopped()
            let stopping = Task {
                await server.stop(timeout: .seconds(60))
                stopped.mark()
            }
            // Stopping now would abort the process; stop has to hold on while the stream waits.
            try await Task.sleep(for: .milliseconds(300))
            #expect(!stopped.isMarked)
            let ended = ContinuousClock.now
            stream.finish()
            await stopping.value
            #expect(ContinuousClock.now - ended < .seconds(30))
            let response = try await reader.value
            #expect(response.status == 200)
            #expect(response.text == ": open\n\n")
        }
    }

    /// Stop right as the last exchange ends, many times: the moment a libmicrohttpd worker
    /// thread goes back to its epoll loop. (With MHD_quiesce_daemon before the stop, 0.9.75
    /// could abort here: both sides take the listen socket out of the epoll set.) The
    /// listening socket is closed afterwards: a new connection is refused.
    @Test func stoppingAsTheLastExchangeEndsNeitherAbortsNorLeavesTheSocketOpen() async throws {
        var router = Router()
        router.get("/fast") { _ in .json(200, Array(#"{"fast":true}"#.utf8)) }
        for _ in 0..<50 {
            var port = 0
            try await withTestServer(router: router) { server, client in
                port = server.port
                let status = try await client.get("/fast").status
                #expect(status == 200)
                await server.stop()
            }
            let refused = (try? TestConnection(port: port, timeoutSeconds: 1)) == nil
            #expect(refused, "port \(port) still accepts connections after stop")
        }
    }
}

/// Whether a task got past a point, read from another.
private final class Stopped: Sendable {
    private let flag = Atomic<Bool>(false)
    func mark() { flag.store(true, ordering: .releasing) }
    var isMarked: Bool { flag.load(ordering: .acquiring) }
}
