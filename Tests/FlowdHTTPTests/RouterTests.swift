import FlowdHTTP
import Testing

/// What `Router.routes` promises its readers (the OpenAPI test checks the document against it).
@Suite("Router")
struct RouterTests {
    @Test func theRoutesAreListedOnceEachInTheOrderTheyWereRegistered() {
        var router = Router()
        router.get("/b") { _ in HTTPResponse(status: 200) }
        router.post("/a/{id}") { _ in HTTPResponse(status: 201) }
        router.get("/a/{id}") { _ in HTTPResponse(status: 200) }
        router.get("/b") { _ in HTTPResponse(status: 204) }
        router.delete("/a/{id}") { _ in HTTPResponse(status: 204) }
        #expect(router.routes.map(\.description) == ["GET /b", "POST /a/{id}", "GET /a/{id}", "DELETE /a/{id}"])
    }

    @Test func registeringARouteAgainReplacesItsHandler() async throws {
        var router = Router()
        router.get("/b") { _ in HTTPResponse(status: 200) }
        router.get("/b") { _ in HTTPResponse(status: 204) }
        guard case .found(let pattern, _, let handler) = router.match(method: "GET", rawPath: "/b") else {
            Issue.record("GET /b is not routed")
            return
        }
        #expect(pattern == "/b")
        #expect(try await handler(HTTPRequest(head: HTTPRequestHead(method: "GET", rawPath: "/b"), route: pattern)).status == 204)
    }
}
