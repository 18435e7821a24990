import FlowdTesting
import Foundation
import Stores
import Testing

@Suite("Documents and memory routes")
struct DocumentAndMemoryRouteTests {
    @Test func documentsArePutReadListedAndDeleted() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let created = try await flowd.client.put("/docs/prd", body: "# PRD\nwith é", headers: [("Content-Type", "text/markdown")])
            #expect(created.status == 201)
            #expect(created.json["id"]?.stringValue == "prd")
            #expect(created.json["bytes"]?.int == 13)
            let replaced = try await flowd.client.put("/docs/prd", body: "# PRD v2")
            #expect(replaced.status == 200)
            let read = try await flowd.client.get("/docs/prd")
            #expect(read.status == 200)
            #expect(read.text == "# PRD v2")
            #expect(read.header("Content-Type") == "text/markdown; charset=utf-8")
            try flowd.directory.write("docs/by-hand.md", "placed by hand")
            let list = try await flowd.client.get("/docs")
            let docs = list.json["docs"]?.elements ?? []
            #expect(docs.map { $0["id"]?.stringValue } == ["by-hand", "prd"])
            let r1 = try await flowd.client.delete("/docs/prd")
            #expect(r1.status == 204)
            let r2 = try await flowd.client.delete("/docs/prd")
            #expect(r2.status == 404)
            let missing = try await flowd.client.get("/docs/prd")
            #expect(missing.status == 404)
            #expect(missing.json["detail"]?.stringValue != nil)
        }
    }

    @Test func theOriginalServicesDocumentRoutesStillWork() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let before = try await flowd.client.get("/doc/brief/status")
            #expect(before.json["exists"]?.boolValue == false)
            let saved = try await flowd.client.request("PUT", "/doc/brief", headers: [("Content-Type", "application/json")], body: Array(##"{"content": "# Brief"}"##.utf8))
            #expect(saved.status == 200)
            #expect(saved.json["message"]?.stringValue == "Document saved")
            #expect(saved.json["id"]?.stringValue == "brief")
            let after = try await flowd.client.get("/doc/brief/status")
            #expect(after.json["exists"]?.boolValue == true)
            let r3 = try await flowd.client.get("/doc/brief")
            #expect(r3.text == "# Brief")
            let noContent = try await flowd.client.request("PUT", "/doc/brief", body: Array(#"{"text": "x"}"#.utf8))
            #expect(noContent.status == 422)
            let notJSON = try await flowd.client.request("PUT", "/doc/brief", headers: [("Content-Type", "text/plain")], body: Array("x".utf8))
            #expect(notJSON.status == 415)
        }
    }

    @Test(arguments: ["%2e%2e%2fescape", "..%2F..%2Fescape", "a%2Fb", "a%00b", "%2e%2e", "-dash", "caf%C3%A9", String(repeating: "a", count: 129)])
    func documentIDsThatTryToEscapeAre422AndTouchNoFile(id: String) async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let before = try listing(flowd.directory.url)
            let put = try await flowd.client.put("/docs/\(id)", body: "owned")
            #expect(put.status == 422)
            let detail = (put.json["detail"]?.arrayValue)?.first
            #expect(detail?["loc"]?.strings == ["path", "id"])
            let r4 = try await flowd.client.get("/docs/\(id)")
            #expect(r4.status == 422)
            let r5 = try await flowd.client.delete("/docs/\(id)")
            #expect(r5.status == 422)
            let r6 = try await flowd.client.get("/doc/\(id)/status")
            #expect(r6.status == 422)
            #expect(try listing(flowd.directory.url) == before)
        }
    }

    @Test func memoryIsPutReadListedAndDeleted() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let put = try await flowd.client.request("PUT", "/memory/shared/story-1", body: Array(#"{"value": {"n": 1, "list": [true, null, 2.5]}}"#.utf8))
            #expect(put.status == 200)
            #expect(put.json["scope"]?.stringValue == "shared")
            #expect(put.json["key"]?.stringValue == "story-1")
            let read = try await flowd.client.get("/memory/shared/story-1")
            #expect(read.status == 200)
            #expect((read.json["value"])?["n"]?.int == 1)
            _ = try await flowd.client.request("PUT", "/memory/isolated/analyst:story-1", body: Array(#"{"value": "a"}"#.utf8))
            _ = try await flowd.client.request("PUT", "/memory/isolated/analyst:story-2", body: Array(#"{"value": "b"}"#.utf8))
            let list = try await flowd.client.get("/memory/isolated?prefix=analyst%3Astory-1")
            let entries = list.json["entries"]?.elements ?? []
            #expect(entries.count == 1)
            #expect(entries.first?["key"]?.stringValue == "analyst:story-1")
            let r7 = try await flowd.client.delete("/memory/shared/story-1")
            #expect(r7.status == 204)
            let r8 = try await flowd.client.delete("/memory/shared/story-1")
            #expect(r8.status == 404)
            let r9 = try await flowd.client.get("/memory/shared/story-1")
            #expect(r9.status == 404)
        }
    }

    @Test func badMemoryRequestsGetTheDocumentedStatus() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let r10 = try await flowd.client.get("/memory/private/k")
            #expect(r10.status == 422)
            let r11 = try await flowd.client.get("/memory/private")
            #expect(r11.status == 422)
            let r12 = try await flowd.client.get("/memory/shared/bad%2Fkey")
            #expect(r12.status == 422)
            let r13 = try await flowd.client.request("PUT", "/memory/shared/k", body: Array("[1]".utf8))
            #expect(r13.status == 400)
            let r14 = try await flowd.client.request("PUT", "/memory/shared/k", body: Array("{oops".utf8))
            #expect(r14.status == 400)
            let r15 = try await flowd.client.request("PUT", "/memory/shared/k", body: Array(#"{"v": 1}"#.utf8))
            #expect(r15.status == 422)
            let r16 = try await flowd.client.request("PUT", "/memory/nope/k", body: Array(#"{"value": 1}"#.utf8))
            #expect(r16.status == 422)
            let r17 = try await flowd.client.request("PUT", "/memory/shared/k", headers: [("Content-Type", "text/plain")], body: Array(#"{"value": 1}"#.utf8))
            #expect(r17.status == 415)
        }
    }
}

/// Every path under `directory`, recursively, sorted.
private func listing(_ directory: URL) throws -> [String] {
    let enumerator = FileManager.default.enumerator(atPath: directory.path)
    var paths: [String] = []
    while let path = enumerator?.nextObject() as? String { paths.append(path) }
    return paths.sorted()
}
