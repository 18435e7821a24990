@testable import FlowdAPI
import FlowdTesting
import Foundation
import Testing

/// The page's behaviour in a browser is `Tests/clients/test_console.py`; these check what the
/// server promises about it.
@Suite("Web console")
struct ConsoleTests {
    @Test func thePageIsServedWithAStrictPolicyWhoseNonceIsItsScriptsAndStyles() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.client.get("/")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/html; charset=utf-8")
            #expect(response.header("X-Content-Type-Options") == "nosniff")
            #expect(response.header("Referrer-Policy") == "no-referrer")
            #expect(response.header("Cache-Control") == "no-cache")
            let policy = try #require(response.header("Content-Security-Policy"))
            #expect(policy.hasPrefix("default-src 'none'; "))
            #expect(!policy.contains("unsafe"))
            #expect(policy.contains("connect-src 'self'"))
            #expect(policy.contains("frame-ancestors 'none'"))
            let nonce = try #require(policy.firstMatch(of: /script-src 'nonce-([A-Za-z0-9+\/=]{24})'/)?.1)
            #expect(policy.contains("style-src 'nonce-\(nonce)'"))
            let page = response.text
            #expect(page.contains("<script nonce=\"\(nonce)\">"))
            #expect(page.contains("<style nonce=\"\(nonce)\">"))
            #expect(!page.contains(ConsoleRoutes.nonceMarker))
            // Nothing from elsewhere: no absolute URL, no script or style but the inline ones.
            #expect(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"))
            #expect(page.matches(of: /<script/).count == 1)
            #expect(page.matches(of: /<link/).count == 1 && page.contains(#"<link rel="icon" href="data:,">"#))

            let again = try await flowd.client.get("/")
            #expect(again.header("Content-Security-Policy") != policy, "a fresh nonce for every response")
        }
    }

    /// The graph, the tokens and the run list go through the routes of the contract; the graph
    /// is built with DOM calls (Trusted Types refuses HTML strings) and names no URL.
    @Test func thePageDrawsFlowsFollowsTokensAndListsAStorysRunsThroughTheAPI() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let page = try await flowd.client.get("/").text
            #expect(page.contains("'/runs?story_id='"))
            #expect(page.contains("'?tokens=true'"))
            #expect(page.contains("createElementNS(SVG"))
            #expect(page.contains(#"<svg id="svg-namespace" hidden aria-hidden="true"></svg>"#))
            #expect(!page.contains("innerHTML") && !page.contains("insertAdjacentHTML") && !page.contains("w3.org"))
            for id in ["run-graph", "history-form", "history-story", "history", "history-more"] {
                #expect(page.contains(#"id="\#(id)""#), "\(id)")
            }
        }
    }

    @Test func withAnAPIKeyThePageAloneIsServedWithoutIt() async throws {
        try await withFlowd(Fixtures.basic, mode: .router, configure: { $0.apiKey = "s3cret" }) { flowd in
            let page = try await flowd.client.get("/")
            #expect(page.status == 200)
            #expect(page.text.contains("<title>flowd console</title>"))
            for path in ["/flows", "/console.js", "/index.html", "//"] {
                let response = try await flowd.client.get(path)
                #expect(response.status == 401, "\(path)")
            }
            let post = try await flowd.client.post("/", json: "{}")
            #expect(post.status == 401)
        }
    }

    @Test func otherMethodsOnThePageAre405() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let response = try await flowd.client.post("/", json: "{}")
            #expect(response.status == 405)
            #expect(response.header("Allow") == "GET, HEAD")
        }
    }
}
