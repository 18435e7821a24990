import FlowdAPI
import FlowdJSON
import FlowdTesting
import Foundation
import Stores
import Testing

/// `GET /runs` over HTTP, on each backend: 422 for a bad query, any cursor of the pattern,
/// filters, newest first, pages that hold every run once, live runs with their current
/// status, and records of a flow no longer configured.
@Suite("GET /runs", .serialized)
struct RunListTests {
    static let stores: [FlowdConfiguration.StoreKind] =
        PostgresServer.unavailableReason == nil ? [.jsonl, .postgres] : [.jsonl]

    /// flowd on `store`; `data` (a data dir, or a database URL) is shared when given.
    private func withStore(_ store: FlowdConfiguration.StoreKind, _ agents: TestAgents = Fixtures.basic, data: String? = nil,
                           _ body: (TestFlowd) async throws -> Void) async throws {
        var database: String?
        if store == .postgres { database = data == nil ? try await PostgresServer.shared().makeDatabase() : data }
        let url = database
        try await withFlowd(agents, mode: .router, configure: { configuration in
            configuration.store = store
            configuration.databaseURL = url
            if store == .jsonl, let data { configuration.dataDirectory = URL(fileURLWithPath: data) }
        }, body)
    }

    private func list(_ flowd: TestFlowd, _ query: String) async throws -> (runs: [JSONValue], next: String?) {
        let response = try await flowd.client.get("/runs?" + query)
        #expect(response.status == 200, "\(query): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        let object = response.json
        #expect(object.keys.sorted() == ["next_cursor", "runs"])
        return (object["runs"]?.elements ?? [], object["next_cursor"]?.stringValue)
    }

    /// Every page, following `next_cursor`.
    private func listAll(_ flowd: TestFlowd, _ query: String) async throws -> [JSONValue] {
        var (runs, next) = try await list(flowd, query)
        while let cursor = next {
            let page = try await list(flowd, query + "&cursor=" + cursor)
            runs += page.runs
            next = page.next
        }
        return runs
    }

    private func startRun(_ flowd: TestFlowd, flow: String = "default", story: String, input: String = "x") async throws -> String {
        let response = try await flowd.post("/runs", #"{"flow":"\#(flow)","input":"\#(input)","story_id":"\#(story)"}"#)
        #expect(response.status == 202)
        return response.json["run_id"]?.stringValue ?? ""
    }

    private func waitForStatus(_ flowd: TestFlowd, _ runID: String, _ wanted: Set<String>) async throws {
        let deadline = ContinuousClock.now + scaled(.seconds(20))
        while ContinuousClock.now < deadline {
            if let status = try await flowd.client.get("/runs/\(runID)").json["status"]?.stringValue, wanted.contains(status) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("run \(runID) never reached \(wanted)")
    }

    @Test(arguments: stores)
    func aBadQueryValueIs422NamingIt(_ store: FlowdConfiguration.StoreKind) async throws {
        try await withStore(store) { flowd in
            let cases: [(String, [(String, String)])] = [
                ("limit=0", [("limit", "greater_than_equal")]), ("limit=101", [("limit", "less_than_equal")]),
                ("limit=x", [("limit", "int_parsing")]), ("limit=", [("limit", "int_parsing")]),
                ("status=done", [("status", "enum")]), ("status=", [("status", "enum")]),
                ("story_id=bad%20id", [("story_id", "string_pattern_mismatch")]), ("story_id=", [("story_id", "string_pattern_mismatch")]),
                ("flow=-x", [("flow", "string_pattern_mismatch")]), ("cursor=abc", [("cursor", "string_pattern_mismatch")]),
                ("cursor=", [("cursor", "string_pattern_mismatch")]),
                ("story_id=a&story_id=a", [("story_id", "duplicate_parameter")]), ("limit=5&limit=6", [("limit", "duplicate_parameter")]),
                ("limit=0&status=nope&cursor=x", [("status", "enum"), ("limit", "greater_than_equal"), ("cursor", "string_pattern_mismatch")]),
            ]
            for (query, expected) in cases {
                let response = try await flowd.client.get("/runs?" + query)
                #expect(response.status == 422, "\(query)")
                let issues = response.json["detail"]?.elements ?? []
                let found = issues.map { (($0["loc"]?.strings) ?? [], $0["type"]?.stringValue ?? "") }
                #expect(found.map { $0.0 } == expected.map { ["query", $0.0] }, "\(query): \(issues)")
                #expect(found.map { $0.1 } == expected.map { $0.1 }, "\(query): \(issues)")
            }
            // Unknown parameters are ignored; the bounds are allowed.
            for query in ["foo=1", "limit=1", "limit=100", "status=pending_docs&flow=nothing-like-it", "limit=%2B7"] {
                _ = try await list(flowd, query)
            }
        }
    }

    @Test(arguments: stores)
    func everyCursorMatchingThePatternIsAccepted(_ store: FlowdConfiguration.StoreKind) async throws {
        try await withStore(store) { flowd in
            for k in 0..<3 { #expect(try await flowd.run(#"{"input":"i\#(k)","story_id":"c"}"#).status == 200) }
            var generator = SystemRandomNumberGenerator()
            let idChars = Array("ABCXYZabcxyz0189._-")
            var cursors = ["0-", "000000000000000-", "999999999999999-", "9-" + String(repeating: "z", count: 128), "1--", "1-.", "5-_a"]
            for _ in 0..<200 {
                let digits = String((0..<Int.random(in: 1...15, using: &generator)).map { _ in "0123456789".randomElement(using: &generator)! })
                let id = String((0..<Int.random(in: 0...128, using: &generator)).map { _ in idChars.randomElement(using: &generator)! })
                cursors.append(digits + "-" + id)
            }
            let all = try await list(flowd, "story_id=c").runs
            #expect(all.count == 3)
            for cursor in cursors {
                for query in ["cursor=\(cursor)", "story_id=c&status=succeeded&cursor=\(cursor)", "flow=default&limit=1&cursor=\(cursor)"] {
                    let response = try await flowd.client.get("/runs?" + query)
                    #expect(response.status == 200, "\(query): \(String(decoding: response.body, as: UTF8.self))")
                }
            }
            // A cursor past every run lists them all; one before every run, none.
            #expect(try await list(flowd, "story_id=c&cursor=999999999999999-").runs.count == 3)
            #expect(try await list(flowd, "story_id=c&cursor=0-").runs.isEmpty)
        }
    }

    @Test(arguments: stores)
    func runsAreListedNewestFirstFilteredAndPagedAsTheirRecordsRead(_ store: FlowdConfiguration.StoreKind) async throws {
        try await withStore(store) { flowd in
            for k in 0..<5 { #expect(try await flowd.run(#"{"input":"a\#(k)","story_id":"a"}"#).status == 200) }
            for k in 0..<3 { #expect(try await flowd.run(#"{"input":"b\#(k)","story_id":"b"}"#).status == 200) }
            for k in 0..<2 { #expect(try await flowd.run(#"{"flow":"failing","input":"f\#(k)","story_id":"a"}"#).status == 500) }
            let everything = try await listAll(flowd, "limit=3")
            #expect(everything.count == 10)
            // Each entry is exactly what GET /runs/{id} answers.
            for run in everything {
                let id = run["run_id"]?.stringValue ?? ""
                let record = try await flowd.client.get("/runs/\(id)").json
                #expect(record == run, "\(id)")
            }
            let keys = everything.map { ($0["created_at"]?.stringValue ?? "", $0["run_id"]?.stringValue ?? "") }
            #expect(zip(keys, keys.dropFirst()).allSatisfy { $0.0 > $0.1 }, "not newest first: \(keys)")
            func ids(_ query: String) async throws -> [String] {
                try await listAll(flowd, query).map { $0["run_id"]?.stringValue ?? "" }
            }
            let byID = Dictionary(uniqueKeysWithValues: everything.map { ($0["run_id"]?.stringValue ?? "", $0) })
            func expected(_ keep: (JSONValue) -> Bool) -> [String] {
                everything.filter(keep).map { $0["run_id"]?.stringValue ?? "" }
            }
            #expect(try await ids("story_id=a&limit=2") == expected { $0["story_id"]?.stringValue == "a" })
            #expect(try await ids("story_id=a&status=failed") == expected { $0["story_id"]?.stringValue == "a" && $0["status"]?.stringValue == "failed" })
            #expect(try await ids("flow=failing&limit=1").count == 2)
            #expect(try await ids("story_id=b&status=succeeded&flow=default") == expected { $0["story_id"]?.stringValue == "b" })
            #expect(try await ids("status=running").isEmpty)
            #expect(try await ids("flow=sleepy").isEmpty)
            #expect(try await ids("flow=never-configured").isEmpty)
            #expect(byID.count == 10)
            let first = try await list(flowd, "")
            #expect(first.runs.count == 10 && first.next == nil)  // default limit 20
            let page = try await list(flowd, "limit=10")
            #expect(page.runs.count == 10 && page.next == nil)
            let short = try await list(flowd, "limit=9")
            #expect(short.runs.count == 9 && short.next != nil)
        }
    }

    @Test(arguments: stores)
    func liveRunsAreListedOnceWithTheirCurrentStatus(_ store: FlowdConfiguration.StoreKind) async throws {
        try await withStore(store) { flowd in
            let first = try await startRun(flowd, flow: "slow", story: "live")
            let second = try await startRun(flowd, flow: "slow", story: "live")
            try await waitForStatus(flowd, first, ["running"])
            let running = try await list(flowd, "story_id=live&status=running").runs.map { $0["run_id"]?.stringValue ?? "" }
            #expect(running == [first])
            let queued = try await list(flowd, "story_id=live&status=queued").runs.map { $0["run_id"]?.stringValue ?? "" }
            #expect(queued == [second])
            let both = try await list(flowd, "story_id=live").runs
            #expect(both.map { $0["run_id"]?.stringValue ?? "" } == [second, first])
            #expect(both.map { $0["status"]?.stringValue ?? "" } == ["queued", "running"])
            try await waitForStatus(flowd, second, ["succeeded"])
            let done = try await list(flowd, "story_id=live&status=succeeded").runs.map { $0["run_id"]?.stringValue ?? "" }
            #expect(done == [second, first])
            #expect(try await list(flowd, "story_id=live&status=running").runs.isEmpty)
        }
    }

    @Test(arguments: stores)
    func pagesHoldEveryRunOnceWhileRunsAreCreated(_ store: FlowdConfiguration.StoreKind) async throws {
        try await withStore(store) { flowd in
            for k in 0..<12 { #expect(try await flowd.run(#"{"input":"p\#(k)","story_id":"p"}"#).status == 200) }
            let before = try await listAll(flowd, "story_id=p&limit=100").map { $0["run_id"]?.stringValue ?? "" }
            let creating = Task {
                for k in 0..<20 { _ = try await flowd.run(#"{"input":"n\#(k)","story_id":"p"}"#) }
            }
            var (listed, next) = try await list(flowd, "story_id=p&limit=2")
            while let cursor = next {
                let page = try await list(flowd, "story_id=p&limit=2&cursor=\(cursor)")
                listed += page.runs
                next = page.next
            }
            try await creating.value
            let ids = listed.map { $0["run_id"]?.stringValue ?? "" }
            #expect(Set(ids).count == ids.count, "a run listed twice")
            #expect(ids.filter(Set(before).contains) == before, "a run skipped")
        }
    }

    @Test(arguments: stores)
    func recordsOfAFlowNoLongerConfiguredStayListable(_ store: FlowdConfiguration.StoreKind) async throws {
        let data = try TempDirectory()
        defer { data.remove() }
        var shared = data.path("data").path
        if store == .postgres { shared = try await PostgresServer.shared().makeDatabase() }
        try await withStore(store, data: shared) { flowd in
            let response = try await flowd.run(#"{"flow":"flaky","input":"x","story_id":"gone"}"#)
            #expect(response.status == 200)
        }
        var without = Fixtures.basic
        without.flows = without.flows.replacingOccurrences(of: "flaky: [flaky]\n", with: "")
        #expect(!without.flows.contains("flaky:"))
        try await withStore(store, without, data: shared) { flowd in
            let runs = try await list(flowd, "flow=flaky").runs
            #expect(runs.map { $0["flow"]?.stringValue } == ["flaky"])
            #expect(runs.first?["status"]?.stringValue == "succeeded")
            #expect(try await list(flowd, "story_id=gone&flow=flaky&status=succeeded").runs.count == 1)
        }
    }
}
