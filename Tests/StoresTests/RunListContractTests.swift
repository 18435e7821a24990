import Foundation
import Testing

@testable import Stores

/// `RunBackend.list` on both backends: filters that combine, newest first, keyset pages that
/// neither repeat nor skip a run while others arrive, any cursor position, and the index kept
/// through finishes, reopening and pruning.
@Suite("run list contract")
struct RunListContractTests {
    private static let t0 = Date(timeIntervalSince1970: 1_795_000_000.123)

    private static func record(_ id: String, story: String, flow: String = "default", at ms: Int) -> RunRecord {
        RunRecord(runID: id, flow: flow, storyID: story, status: .queued, createdAt: t0.addingTimeInterval(Double(ms) / 1000))
    }

    /// Stores `record` as arrived, then ends it with `status` (a live status leaves it live).
    private static func store(_ record: RunRecord, _ status: RunStatus, in runs: any RunBackend) async throws -> RunRecord {
        #expect(try await runs.arrive(record, durable: true) == .arrived)
        guard status.isFinished else { return record }
        var r = record
        r.status = status
        r.finishedAt = record.createdAt.addingTimeInterval(1)
        switch status {
        case .succeeded:
            r.result = "ok"
            let done = RunEvent(id: 1, name: RunEventName.done, data: ["result": "ok", "pending_docs": nil, "run_id": .string(r.runID)])
            var tx = MemoryTransaction()
            tx.set(.isolated, "analyst:\(r.storyID)", ["last_output": "ok"])
            try await runs.commit(tx, finish: RunFinish(record: r, events: [done]))
        case .cancelled:
            r.error = "Run cancelled"
            try await runs.finish(RunFinish(record: r, events: [RunEvent(id: 1, name: RunEventName.cancelled, data: ["run_id": .string(r.runID)])]))
        default:
            r.error = "boom"
            try await runs.finish(RunFinish(record: r, events: [RunEvent.failure(id: 1, runID: r.runID, code: 500, detail: "boom")]))
        }
        return r
    }

    /// Every page from the start, following `more`, as the API's cursor does.
    private static func allPages(_ runs: any RunBackend, _ query: RunQuery) async throws -> [[RunRecord]] {
        var pages: [[RunRecord]] = []
        var query = query
        while true {
            let page = try await runs.list(query)
            pages.append(page.records)
            guard page.more, let last = page.records.last else { break }
            query.before = RunCursor(last)
        }
        return pages
    }

    /// 40 runs in 3 stories, 2 flows, 4 statuses, created 1 ms apart (two pairs at the same ms).
    private static func seed(_ runs: any RunBackend) async throws -> [RunRecord] {
        let statuses: [RunStatus] = [.succeeded, .failed, .queued, .cancelled]
        var stored: [RunRecord] = []
        for k in 0..<40 {
            let ms = k == 7 || k == 21 ? k - 1 : k  // same millisecond as the one before: the id breaks the tie
            let r = record(String(format: "run-%02d", k), story: "s\(k % 3)", flow: k % 5 == 0 ? "other" : "default", at: ms)
            stored.append(try await store(r, statuses[k % 4], in: runs))
        }
        return stored
    }

    private static func newestFirst(_ records: [RunRecord]) -> [RunRecord] {
        records.sorted { RunCursor($1) < RunCursor($0) }
    }

    @Test(arguments: Backend.available)
    func filtersCombineAndPagesAreNewestFirstWithoutRepeatsOrGaps(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        var runs = try await fixture.openBackend()
        let stored = try await Self.seed(runs)
        for reopened in [false, true] {
            if reopened {
                try await runs.close()
                // The index is rebuilt from the file (or read from the database): the same pages.
                runs = try await fixture.openBackend(onRestart: .resume)
            }
            let queries: [RunQuery] = [
                RunQuery(limit: 100), RunQuery(limit: 3), RunQuery(storyID: "s1", limit: 4), RunQuery(flow: "other", limit: 2),
                RunQuery(status: .failed, limit: 3), RunQuery(storyID: "s2", flow: "default", status: .succeeded, limit: 1),
                RunQuery(storyID: "nobody", limit: 5), RunQuery(flow: "gone", limit: 5),
            ]
            for query in queries {
                let pages = try await Self.allPages(runs, query)
                let listed = pages.flatMap { $0 }
                let expected = Self.newestFirst(stored.filter { query.matches($0) })
                #expect(listed.map(\.runID) == expected.map(\.runID), "\(query)")
                #expect(listed == expected, "\(query)")
                #expect(pages.dropLast().allSatisfy { $0.count == query.limit }, "\(query)")
                #expect(pages.last!.count <= query.limit)
            }
            #expect(try await runs.list(RunQuery(limit: 3)).more)
            #expect(try await !runs.list(RunQuery(limit: 40)).more)
        }
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func anyCursorPositionContinuesWithTheRunsBeforeIt(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let runs = try await fixture.openBackend()
        let stored = Self.newestFirst(try await Self.seed(runs))
        let t0 = ISOTime.milliseconds(Self.t0)
        let positions = [
            RunCursor(createdMS: 0, runID: ""), RunCursor(createdMS: 999_999_999_999_999, runID: ""),
            RunCursor(createdMS: t0 + 10, runID: ""), RunCursor(createdMS: t0 + 10, runID: "zzz"),
            RunCursor(createdMS: t0 + 6, runID: "run-07"), RunCursor(createdMS: t0 + 6, runID: "run-06"),
            RunCursor(createdMS: t0 + 20, runID: "run-2"), RunCursor(createdMS: t0 + 39, runID: "-"),
        ]
        for position in positions {
            let page = try await runs.list(RunQuery(limit: 100, before: position))
            #expect(page.records == stored.filter { RunCursor($0) < position }, "\(position)")
        }
        // Parsing: every string of the pattern is a position.
        for text in ["0-", "000123-", "999999999999999-" + String(repeating: "z", count: 128), "5-.-_", "12-run-07"] {
            #expect(RunCursor(parsing: text) != nil, "\(text)")
        }
        for text in ["", "-", "1", "a-b", "1234567890123456-x", "1-" + String(repeating: "z", count: 129), "1-a b", "1-é"] {
            #expect(RunCursor(parsing: text) == nil, "\(text)")
        }
        #expect(RunCursor(parsing: "12-run-07") == RunCursor(createdMS: 12, runID: "run-07"))
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func pagesNeitherRepeatNorSkipARunWhileOthersArrive(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let runs = try await fixture.openBackend()
        let stored = try await Self.seed(runs)
        // New runs arrive meanwhile, created now (after every stored one), in the same story.
        // A millisecond apart: runs created in one millisecond are ordered by id, not arrival.
        let now = Date()
        let arriving = Task {
            for k in 0..<60 {
                let r = RunRecord(runID: "new-\(k)", flow: "default", storyID: "s1", status: .queued,
                                  createdAt: now.addingTimeInterval(Double(k) / 1000))
                _ = try await Self.store(r, k % 2 == 0 ? .failed : .queued, in: runs)
            }
        }
        for query in [RunQuery(limit: 3), RunQuery(storyID: "s1", limit: 2)] {
            var first = try await runs.list(query)
            var listed = first.records
            while first.more, let last = first.records.last {
                try await Task.sleep(for: .milliseconds(2))
                first = try await runs.list(RunQuery(storyID: query.storyID, limit: query.limit, before: RunCursor(last)))
                listed += first.records
            }
            #expect(Set(listed.map(\.runID)).count == listed.count, "a run listed twice")
            let old = listed.filter { !$0.runID.hasPrefix("new-") }
            #expect(old.map(\.runID) == Self.newestFirst(stored.filter { query.matches($0) }).map(\.runID))
            #expect(listed.map(RunCursor.init) == listed.map(RunCursor.init).sorted(by: >))
        }
        try await arriving.value
        // The runs that arrived are listed first now, in their order.
        let all = try await Self.allPages(runs, RunQuery(storyID: "s1", limit: 100)).flatMap { $0 }
        #expect(all.prefix(60).map(\.runID) == (0..<60).reversed().map { "new-\($0)" })
        try await runs.close()
    }

    @Test(arguments: Backend.available)
    func aRunIsListedWithItsStoredStatusAndPrunedRunsAreNot(_ backend: Backend) async throws {
        let fixture = try await StoreFixture.make(backend)
        defer { fixture.remove() }
        let runs = try await fixture.openBackend()
        let r = Self.record("r1", story: "s", at: 0)
        _ = try await Self.store(r, .queued, in: runs)
        #expect(try await runs.list(RunQuery(status: .queued)).records.map(\.runID) == ["r1"])
        var done = r
        done.status = .failed
        done.error = "boom"
        done.finishedAt = Date(timeIntervalSince1970: 1_000)
        try await runs.finish(RunFinish(record: done, events: [RunEvent.failure(id: 1, runID: "r1", code: 500, detail: "boom")]))
        #expect(try await runs.list(RunQuery(status: .queued)).records.isEmpty)
        #expect(try await runs.list(RunQuery(storyID: "s", status: .failed)).records == [done])
        // A `/run`'s run, stored only at its end, is listed from then.
        let inline = Self.record("r2", story: "s", at: 5)
        #expect(try await runs.arrive(inline, durable: false) == .arrived)
        var inlineDone = inline
        inlineDone.status = .cancelled
        inlineDone.error = "Run cancelled"
        inlineDone.finishedAt = Date()
        try await runs.finish(RunFinish(record: inlineDone, events: [RunEvent(id: 1, name: RunEventName.cancelled, data: ["run_id": "r2"])]))
        #expect(try await runs.list(RunQuery(storyID: "s")).records.map(\.runID) == ["r2", "r1"])
        #expect(try await runs.prune(finishedBefore: Date(timeIntervalSince1970: 2_000)) == 1)
        #expect(try await runs.list(RunQuery(storyID: "s")).records.map(\.runID) == ["r2"])
        #expect(try await runs.list(RunQuery(status: .failed)).records.isEmpty)
        try await runs.close()
    }
}
