@testable import FlowdHTTP
import FlowdTesting
import Foundation
import FlowdJSON
import Testing

/// Routes the tests below share.
private func testRouter() -> Router {
    var router = Router()
    router.get("/fast") { _ in .json(200, Array(#"{"fast":true}"#.utf8)) }
    router.get("/sleep") { request in
        let milliseconds = Int(request.head.queryValue("ms") ?? "1000") ?? 1000
        try await Task.sleep(for: .milliseconds(milliseconds))
        return .json(200, Array(#"{"slept":true}"#.utf8))
    }
    router.get("/items/{id}") { request in
        HTTPResponse(status: 200, body: .bytes(Array(request.parameters["id", default: ""].utf8)))
    }
    router.get("/items/{id}/parts/{part}") { request in
        HTTPResponse(status: 200, body: .bytes(Array("\(request.parameters["id"]!)|\(request.parameters["part"]!)".utf8)))
    }
    router.post("/echo") { request in
        var checksum: UInt64 = 0
        for (index, byte) in request.body.enumerated() { checksum &+= UInt64(byte) &* UInt64(index + 1) }
        return .json(200, Array(#"{"bytes":\#(request.body.count),"checksum":\#(checksum)}"#.utf8))
    }
    router.put("/echo") { _ in .json(200, []) }
    router.get("/query") { request in
        HTTPResponse(status: 200, body: .bytes(Array((request.head.queryValue("q") ?? "-").utf8)))
    }
    router.get("/fail/http") { _ in throw HTTPError(409, "Already there") }
    router.get("/fail/other") { _ in throw CocoaError(.fileNoSuchFile) }
    router.get("/stream") { request in
        let count = Int(request.head.queryValue("n") ?? "5") ?? 5
        let stream = ResponseStream()
        Task {
            for index in 0..<count {
                try? await Task.sleep(for: .milliseconds(20))
                stream.write("data: \(index)\n\n")
            }
            stream.finish()
        }
        return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/event-stream")]), body: .stream(stream))
    }
    return router
}

private func checksum(_ bytes: [UInt8]) -> UInt64 {
    var sum: UInt64 = 0
    for (index, byte) in bytes.enumerated() { sum &+= UInt64(byte) &* UInt64(index + 1) }
    return sum
}

@Suite("HTTP server")
struct HTTPServerTests {
    @Test func slowHandlersDoNotDelayAFastRoute() async throws {
        try await withTestServer(router: testRouter()) { server, client in
            let slow = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<200 { group.addTask { try await client.get("/sleep?ms=1000").status } }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            // Wait until all 200 handlers are awaiting.
            let deadline = ContinuousClock.now + .seconds(10)
            while server.inFlightCount < 200, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(server.inFlightCount == 200)
            // Timed on a connection opened beforehand: the server's answer, not the client's set-up.
            let timings = try await TestHTTPClient.blocking { () -> [Duration] in
                let connection = try TestConnection(port: client.port)
                return try (0..<5).map { _ in
                    let started = ContinuousClock.now
                    try connection.send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
                    let response = try connection.readResponse()
                    guard response.status == 200 else { throw TestClientError("status \(response.status)") }
                    return ContinuousClock.now - started
                }
            }
            let median = timings.sorted()[2]
            #expect(median < scaled(.milliseconds(100)), "fast route took \(timings) with 200 slow requests in flight")
            let statuses = try await slow.value
            #expect(statuses.count == 200 && statuses.allSatisfy { $0 == 200 })
        }
    }

    @Test(arguments: [
        ("/items/a%2Fb", "a/b"),
        ("/items/a%00b", "a\u{0}b"),
        ("/items/%2e%2e", ".."),
        ("/items/%2e%2e%2fsecret", "../secret"),
        ("/items/..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
        ("/items/caf%C3%A9", "café"),
        ("/items/100%", "100%"),
    ])
    func anEncodedSegmentReachesTheHandlerAsThatOneSegment(path: String, expected: String) async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let response = try await client.get(path)
            #expect(response.status == 200)
            #expect(response.text == expected)
        }
    }

    @Test func encodedSlashesNeverMakeOtherSegments() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let r1 = try await client.get("/items/a%2Fparts%2Fb")
            #expect(r1.text == "a/parts/b")
            let r2 = try await client.get("/items/a/parts/b")
            #expect(r2.text == "a|b")
            let r3 = try await client.get("/items/a/b")
            #expect(r3.status == 404)
            let r4 = try await client.get("/items/")
            #expect(r4.status == 404)
        }
    }

    @Test func queryArgumentsAreDecoded() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let r5 = try await client.get("/query?q=a%20b+c%26")
            #expect(r5.text == "a b c&")
        }
    }

    @Test func unknownPathIs404AndWrongMethodIs405WithAllow() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let missing = try await client.get("/nope")
            #expect(missing.status == 404)
            #expect(missing.json["detail"]?.stringValue == "Not Found")
            #expect(missing.header("Content-Type") == "application/json")
            let wrong = try await client.request("DELETE", "/fast")
            #expect(wrong.status == 405)
            #expect(wrong.header("Allow") == "GET, HEAD")
            #expect(wrong.json["detail"]?.stringValue == "Method Not Allowed")
            let both = try await client.request("PATCH", "/echo")
            #expect(both.header("Allow") == "POST, PUT")
        }
    }

    @Test func thrownErrorsBecomeDetailAnswers() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let conflict = try await client.get("/fail/http")
            #expect(conflict.status == 409)
            #expect(conflict.json["detail"]?.stringValue == "Already there")
            let other = try await client.get("/fail/other")
            #expect(other.status == 500)
            #expect(other.json["detail"]?.stringValue == "Internal Server Error")
        }
    }

    @Test func aBodySplitAcrossManyWritesArrivesWhole() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let response = try await TestHTTPClient.blocking {
                let connection = try TestConnection(port: client.port)
                try connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
                var offset = 0
                while offset < body.count {
                    let end = min(body.count, offset + 7_000)
                    try connection.send(Array(body[offset..<end]))
                    offset = end
                    if offset % 70_000 == 0 { usleep(5_000) }
                }
                return try connection.readResponse()
            }
            #expect(response.status == 200)
            #expect(response.json["bytes"]?.int == body.count)
            #expect(response.json["checksum"]?.intValue == Int64(checksum(body)))
        }
    }

    @Test func aChunkedBodyArrivesWhole() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let body = Array(repeating: UInt8(ascii: "x"), count: 50_000)
            let response = try await TestHTTPClient.blocking {
                let connection = try TestConnection(port: client.port)
                try connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                for start in stride(from: 0, to: body.count, by: 1_000) {
                    try connection.send(String(1_000, radix: 16) + "\r\n")
                    try connection.send(Array(body[start..<start + 1_000]) + [13, 10])
                }
                try connection.send("0\r\n\r\n")
                return try connection.readResponse()
            }
            #expect(response.status == 200)
            #expect(response.json["bytes"]?.int == body.count)
        }
    }

    @Test func oversizedBodiesAre413AndTheServerStaysUp() async throws {
        try await withTestServer(configure: { $0.maxBodyBytes = 1_000 }, router: testRouter()) { _, client in
            let declared = try await client.request("POST", "/echo", body: Array(repeating: 1, count: 1_001))
            #expect(declared.status == 413)
            #expect(declared.json["detail"]?.stringValue != nil)
            let chunked = try await TestHTTPClient.blocking {
                let connection = try TestConnection(port: client.port)
                try connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in 0..<3 { try connection.send("400\r\n" + String(repeating: "y", count: 1024) + "\r\n") }
                try connection.send("0\r\n\r\n")
                return try connection.readResponse()
            }
            #expect(chunked.status == 413)
            let exact = try await client.request("POST", "/echo", body: Array(repeating: 1, count: 1_000))
            #expect(exact.status == 200)
            let r6 = try await client.get("/fast")
            #expect(r6.status == 200)
        }
    }

    @Test func garbageHalfSentRequestsAndIdleSocketsDoNotHurtOthers() async throws {
        // The idle timeout is long enough for the steps before the first check to come first
        // beside the whole suite on a loaded machine (5 s was not always).
        try await withTestServer(configure: { $0.idleTimeoutSeconds = 15 }, router: testRouter()) { _, client in
            let port = client.port
            let idle = try await TestHTTPClient.blocking { try TestConnection(port: port) }
            let half = try await TestHTTPClient.blocking { () -> TestConnection in
                let connection = try TestConnection(port: port)
                try connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
                return connection
            }
            let garbage = try await TestHTTPClient.blocking { () -> TestResponse? in
                let connection = try TestConnection(port: port)
                try connection.send([0x16, 0x03, 0x01, 0x00, 0xff, 0x01] + Array("\r\n\r\nGET / HTTP/9\r\n\r\n".utf8))
                return try? connection.readResponse()
            }
            #expect(garbage.map { $0.status >= 400 } ?? true)
            let r7 = try await client.get("/fast")
            #expect(r7.status == 200)
            // Answered while the idle and the half-sent connection were still open, so they held
            // nothing up (an order, not a time bound, which a loaded machine could miss: with the
            // suite on 2 busy cores, the steps up to here took up to 1.7 s).
            #expect(idle.isOpen && half.isOpen)
            // The idle and the half-sent connection are closed by the idle timeout.
            let closed = try await TestHTTPClient.blocking { idle.isClosedByPeer(within: 30) && half.isClosedByPeer(within: 30) }
            #expect(closed)
            let r8 = try await client.get("/fast")
            #expect(r8.status == 200)
        }
    }

    @Test(arguments: ["HTTP/1.1", "HTTP/1.0"])
    func keepAliveReusesTheConnection(version: String) async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let statuses = try await TestHTTPClient.blocking { () -> [Int] in
                let connection = try TestConnection(port: client.port)
                var statuses: [Int] = []
                for _ in 0..<3 {
                    let keepAlive = version == "HTTP/1.0" ? "Connection: Keep-Alive\r\n" : ""
                    try connection.send("GET /fast \(version)\r\nHost: x\r\n\(keepAlive)\r\n")
                    let response = try connection.readResponse()
                    statuses.append(response.status)
                }
                return statuses
            }
            #expect(statuses == [200, 200, 200])
        }
    }

    @Test func aStreamIsSentChunkedAsItIsWritten() async throws {
        try await withTestServer(router: testRouter()) { _, client in
            let response = try await client.get("/stream?n=5")
            #expect(response.status == 200)
            #expect(response.header("Transfer-Encoding")?.lowercased() == "chunked")
            #expect(response.text == (0..<5).map { "data: \($0)\n\n" }.joined())
        }
    }

    @Test func aWaitingStreamCostsNoCPU() async throws {
        var router = Router()
        let stream = ResponseStream()
        router.get("/wait") { _ in
            stream.write(": open\n\n")
            return HTTPResponse(status: 200, body: .stream(stream))
        }
        try await withTestServer(router: router) { _, client in
            let reader = Task { try await client.get("/wait") }
            try await waitUntil("the first bytes read off the stream") { stream.readCalls > 0 && stream.unsentBytes == 0 }
            let before = stream.readCalls
            // A second in which nothing is written: the behaviour under test, not a synchronisation.
            try await Task.sleep(for: .seconds(1))
            let reads = stream.readCalls - before
            #expect(reads < 10, "the reader was called \(reads) times while nothing was written")
            stream.write("data: last\n\n")
            stream.finish()
            let response = try await reader.value
            #expect(response.text == ": open\n\ndata: last\n\n")
        }
    }

    @Test func stoppingRightAfterAHandlerEndsStillSendsItsAnswer() async throws {
        // As a drain does: stop the moment the last handler has returned. Its answer is
        // queued by a daemon thread only after the task resumes the connection; stopping
        // before that closed the connection unanswered.
        for _ in 0..<20 {
            try await withTestServer(router: testRouter()) { server, client in
                let slow = Task { try await client.get("/sleep?ms=20") }
                while server.inFlightCount < 1 { try await Task.sleep(for: .milliseconds(1)) }
                while server.inFlightCount > 0 { await Task.yield() }
                await server.stop()
                let response = try await slow.value
                #expect(response.status == 200)
            }
        }
    }

    @Test func cancelledHandlersStillAnswer() async throws {
        try await withTestServer(router: testRouter()) { server, client in
            let slow = Task { try await client.get("/sleep?ms=30000") }
            while server.inFlightCount < 1 { try await Task.sleep(for: .milliseconds(5)) }
            server.cancelInFlight()
            let response = try await slow.value
            #expect(response.status == 503)
            #expect(response.header("Retry-After") != nil)
            #expect(await server.waitForInFlight(timeout: .seconds(1)))
        }
    }
}
