import FlowdJSON
import Foundation
import Testing

@testable import Stores

/// The store protocols' promises, checked against every backend (JSONL files and PostgreSQL).
/// Backend-specific behaviour (file layout, torn lines, compaction) has its own tests.
@Suite("store contract")
struct StoreContractTests {
    // MARK: Memory

    @Test(arguments: Backend.available)
    func memorySetGetDeleteAndListByPrefix(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let stores = try await fixture.open()
        let store = stores.memory
        try await store.set(.isolated, "analyst:s1", ["status": "initialized"])
        try await store.set(.isolated, "writer:s1", ["status": "completed", "last_output": "hi"])
        try await store.set(.isolated, "analyst:s2", 1)
        try await store.set(.shared, "s1", "shared value")
        try await store.set(.global, "g", [1, 2, 3])

        #expect(try await store.get(.isolated, "writer:s1")?["last_output"] == "hi")
        #expect(try await store.get(.shared, "s1") == "shared value")
        #expect(try await store.get(.shared, "writer:s1") == nil)
        #expect(try await store.getMany(.isolated, ["analyst:s1", "nope", "writer:s1"]).keys.sorted() == ["analyst:s1", "writer:s1"])
        #expect(try await store.list(.isolated, prefix: "analyst:").map(\.key) == ["analyst:s1", "analyst:s2"])
        #expect(try await store.list(.isolated, prefix: "").map(\.key) == ["analyst:s1", "analyst:s2", "writer:s1"])
        #expect(try await store.list(.global, prefix: "zz").isEmpty)
        #expect(try await store.list(.global, prefix: "%").isEmpty)  // no pattern syntax in prefixes

        try await store.set(.isolated, "analyst:s2", 2)
        #expect(try await store.get(.isolated, "analyst:s2") == 2)
        #expect(try await store.delete(.isolated, "analyst:s2"))
        #expect(try await !store.delete(.isolated, "analyst:s2"))
        #expect(try await store.get(.isolated, "analyst:s2") == nil)
        #expect(try await !store.delete(.global, "never"))
        try await stores.close()
    }

    @Test(arguments: Backend.available)
    func memoryRefusesInvalidKeysAndWritesNothingOfTheirTransaction(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let stores = try await fixture.open()
        let store = stores.memory
        for key in ["", "../x", "a/b", ":a", "é", "a'b"] {
            await #expect(throws: StoreError.self) { try await store.set(.global, key, 1) }
            #expect(try await store.get(.global, key) == nil)
            #expect(try await !store.delete(.global, key))
        }
        var tx = MemoryTransaction()
        tx.set(.global, "good", 1)
        tx.set(.global, "bad/key", 2)
        await #expect(throws: StoreError.self) { try await store.commit(tx) }
        #expect(try await store.get(.global, "good") == nil)
        try await stores.close()
    }

    @Test(arguments: Backend.available)
    func memoryTransactionsAreWholeAndEveryWriteIsSeenAfterReopening(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let value: JSONValue = ["text": "line\nbreak \"quoted\" é 😀 \u{0}", "n": 9_007_199_254_740_993, "d": 0.1,
                                "z": 1, "a": ["nested": [nil, true]]]
        do {
            let stores = try await fixture.open()
            let store = stores.memory
            try await store.set(.isolated, "a:s", ["status": "completed", "last_output": "old"])
            try await store.set(.isolated, "v:s", value)
            var dropped = MemoryTransaction()
            dropped.set(.isolated, "a:s", ["status": "completed", "last_output": "new"])
            _ = dropped  // never committed

            // Sets only (PostgreSQL: one statement) …
            var sets = MemoryTransaction()
            sets.set(.isolated, "x:t", ["status": "initialized"])
            sets.set(.shared, "t", ["turns": 0])
            try await store.commit(sets)
            // … and a mix, with a key written twice and a delete (one BEGIN … COMMIT).
            var tx = MemoryTransaction()
            tx.set(.isolated, "a:t", ["status": "completed", "last_output": "t"])
            tx.set(.shared, "t", ["turns": 1])
            tx.set(.shared, "t", ["turns": 2])
            tx.delete(.isolated, "a:s")
            tx.set(.global, "count", 1)
            try await store.commit(tx)
            try await store.commit(MemoryTransaction())
            try await stores.close()
        }
        let stores = try await fixture.open()
        let store = stores.memory
        #expect(try await store.get(.isolated, "v:s") == value)
        #expect(try await store.get(.isolated, "v:s")?.jsonString == value.jsonString)  // key order kept
        #expect(try await store.get(.isolated, "a:s") == nil)
        #expect(try await store.get(.isolated, "a:t")?["last_output"] == "t")
        #expect(try await store.get(.isolated, "x:t")?["status"] == "initialized")
        #expect(try await store.get(.shared, "t") == ["turns": 2])
        #expect(try await store.get(.global, "count") == 1)
        try await stores.close()
    }

    @Test(arguments: Backend.available)
    func memoryConcurrentWritersAreAllDurable(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let writers = 32
        let perWriter = 20
        do {
            let stores = try await fixture.open()
            let store = stores.memory
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        for k in 0..<perWriter {
                            if k % 5 == 4 {
                                var tx = MemoryTransaction()
                                tx.set(.isolated, "w\(w):k\(k)", ["w": .int(Int64(w)), "k": .int(Int64(k))])
                                tx.set(.shared, "w\(w)", .int(Int64(k)))
                                try await store.commit(tx)
                            } else {
                                try await store.set(.isolated, "w\(w):k\(k)", ["w": .int(Int64(w)), "k": .int(Int64(k))])
                            }
                            #expect(try await store.get(.isolated, "w\(w):k\(k)") != nil)  // acknowledged means visible
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await stores.close()
        }
        let stores = try await fixture.open()
        #expect(try await stores.memory.list(.isolated, prefix: "").count == writers * perWriter)
        for w in 0..<writers {
            #expect(try await stores.memory.get(.shared, "w\(w)") == .int(Int64(perWriter - 1)))
        }
        try await stores.close()
    }

    // MARK: Documents

    @Test(arguments: Backend.available)
    func documentsPutGetDeleteAndList(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let stores = try await fixture.open()
        let docs = stores.documents
        #expect(try await docs.put("prd", Array("# PRD\n".utf8)))
        #expect(try await !docs.put("prd", Array("# PRD v2\n".utf8)))
        #expect(try await docs.put("brief", []))
        #expect(try await docs.get("prd") == Array("# PRD v2\n".utf8))
        #expect(try await docs.get("brief") == [])
        #expect(try await docs.get("missing") == nil)
        #expect(try await docs.exists("prd"))
        #expect(try await !docs.exists("missing"))
        let listed = try await docs.list()
        #expect(listed.map(\.id) == ["brief", "prd"])
        #expect(listed.map(\.bytes) == [0, 9])
        #expect(try await docs.delete("prd"))
        #expect(try await !docs.delete("prd"))
        #expect(try await docs.get("prd") == nil)
        #expect(try await docs.list().map(\.id) == ["brief"])
        try await stores.close()
        let reopened = try await fixture.open()
        #expect(try await reopened.documents.get("brief") == [])
        try await reopened.close()
    }

    @Test(arguments: Backend.available)
    func documentTextsDecodeUTF8AndInvalidIDsFindNothing(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let stores = try await fixture.open()
        let docs = stores.documents
        _ = try await docs.put("good", Array("héllo".utf8))
        _ = try await docs.put("bad", [0x61, 0xFF, 0x62, 0x00])
        #expect(try await docs.texts(["good", "bad", "missing", "../etc/passwd", "good"]) == ["good": "héllo", "bad": "a\u{FFFD}b\u{0}"])
        for id in ["../x", "a/b", "", String(repeating: "a", count: 129), "é", ".hidden", "-x"] {
            await #expect(throws: StoreError.self) { _ = try await docs.put(id, Array("pwned".utf8)) }
            #expect(try await docs.get(id) == nil)
            #expect(try await !docs.exists(id))
            #expect(try await !docs.delete(id))
        }
        try await stores.close()
    }

    @Test(arguments: Backend.available)
    func aDocumentReaderSeesTheOldOrTheNewContent(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let stores = try await fixture.open()
        let docs = stores.documents
        let a = [UInt8](repeating: UInt8(ascii: "a"), count: 256 * 1024)
        let b = [UInt8](repeating: UInt8(ascii: "b"), count: 200 * 1024)
        _ = try await docs.put("doc", a)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { for k in 0..<20 { _ = try await docs.put("doc", k % 2 == 0 ? b : a) } }
            group.addTask {
                for _ in 0..<100 {
                    let got = try await docs.get("doc")
                    #expect(got == a || got == b)
                }
            }
            try await group.waitForAll()
        }
        #expect(try await docs.get("doc") == a)
        try await stores.close()
    }

    // MARK: Run records

    private static let t0 = Date(timeIntervalSince1970: 1_795_000_000.123)

    private static func running(_ id: String, story: String = "s1", at created: Date = t0) -> RunRecord {
        RunRecord(runID: id, flow: "default", storyID: story, status: .running, createdAt: created)
    }

    private static func succeeded(_ record: RunRecord, _ result: String = "done", at finished: Date = t0.addingTimeInterval(1.5)) -> RunRecord {
        var r = record
        r.status = .succeeded
        r.result = result
        r.finishedAt = finished
        return r
    }

    private static func sampleEvents(_ id: String, count: Int = 4) -> [RunEvent] {
        (1...count).map { k in
            k == count
                ? RunEvent(id: k, name: "done", data: ["result": "done", "pending_docs": nil, "run_id": .string(id)])
                : RunEvent(id: k, name: "progress", data: ["run_id": .string(id), "agent": .string("a\(k)"), "status": "started", "timestamp": 1.5])
        }
    }

    @Test(arguments: Backend.available)
    func runsAreCreatedFinishedAndReadBack(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let stores = try await fixture.open()
        let store = stores.runs
        let r = Self.running("r1")
        try await store.create(r, durable: true)
        #expect(try await store.record("r1") == r)
        #expect(try await store.events("r1", after: 0) == nil)  // not finished
        #expect(try await store.record("nope") == nil)
        #expect(try await store.events("nope", after: 0) == nil)
        #expect(try await store.record("../x") == nil)

        let final = Self.succeeded(r, "line1\n\"quoted\" é")
        let events = Self.sampleEvents("r1")
        try await store.finish(final, events: events)
        #expect(try await store.record("r1") == final)
        #expect(try await store.events("r1", after: 0) == events)
        #expect(try await store.events("r1", after: 2) == Array(events[2...]))
        #expect(try await store.events("r1", after: 4) == [])
        #expect(try await store.events("r1", after: -5) == events)

        // A finish with no events, and a finish without a create.
        let lone = Self.succeeded(Self.running("r2"))
        try await store.finish(lone, events: [])
        #expect(try await store.events("r2", after: 0) == [])
        #expect(try await store.record("r2") == lone)

        await #expect(throws: StoreError.self) { try await store.create(Self.running("bad/id"), durable: true) }
        await #expect(throws: StoreError.self) { try await store.finish(Self.running("r3"), events: []) }
        try await stores.close()
    }

    @Test(arguments: Backend.available)
    func runRecordsAndEventsSurviveReopeningAndPruningDropsOnlyOldFinishedOnes(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let now = Date()
        let cutoff = now.addingTimeInterval(-168 * 3600)
        var expected: [String: (RunRecord, [RunEvent])] = [:]
        do {
            let stores = try await fixture.open()
            for k in 0..<30 {
                let id = "run-\(k)"
                let finishedAt = k < 6 ? cutoff.addingTimeInterval(-Double(k + 1) * 60) : now.addingTimeInterval(-Double(k))
                let r = Self.running(id, story: "s\(k % 5)", at: finishedAt.addingTimeInterval(-1))
                try await stores.runs.create(r, durable: k % 2 == 0)
                var final = Self.succeeded(r, "result \(k)", at: finishedAt)
                if k % 7 == 0 {
                    final.status = .failed
                    final.result = nil
                    final.error = "Flow execution failed: a1: boom"
                }
                let events = Self.sampleEvents(id, count: 1 + k % 6)
                try await stores.runs.finish(final, events: events)
                expected[id] = (final, events)
            }
            try await stores.runs.create(Self.running("live", at: cutoff.addingTimeInterval(-3600)), durable: true)
            try await stores.close()
        }
        let stores = try await fixture.open()
        for (id, (record, events)) in expected {
            #expect(try await stores.runs.record(id) == record)
            #expect(try await stores.runs.events(id, after: 1) == Array(events.dropFirst()))
        }
        #expect(try await stores.runs.prune(finishedBefore: cutoff) == 6)
        #expect(try await stores.runs.prune(finishedBefore: cutoff) == 0)
        for k in 0..<10 { #expect((try await stores.runs.record("run-\(k)") == nil) == (k < 6)) }
        #expect(try await stores.runs.events("run-0", after: 0) == nil)
        #expect(try await stores.runs.record("live") != nil)  // only finished runs are pruned
        try await stores.close()
    }

    @Test(arguments: Backend.available)
    func concurrentRunFinishesAreAllStored(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        do {
            let stores = try await fixture.open()
            let store = stores.runs
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<32 {
                    group.addTask {
                        for k in 0..<10 {
                            let id = "w\(w)-\(k)"
                            let r = Self.running(id, story: "s\(w)")
                            try await store.create(r, durable: false)
                            try await store.finish(Self.succeeded(r, "\(w)/\(k)"), events: Self.sampleEvents(id, count: 3))
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await stores.close()
        }
        let stores = try await fixture.open()
        for w in 0..<32 {
            for k in 0..<10 {
                let id = "w\(w)-\(k)"
                #expect(try await stores.runs.record(id)?.result == "\(w)/\(k)")
                #expect(try await stores.runs.events(id, after: 2)?.map(\.name) == ["done"])
            }
        }
        try await stores.close()
    }
}
