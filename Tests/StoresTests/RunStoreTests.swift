import FlowdJSON
import FlowdTesting
import Foundation
import Logging
import Testing

@testable import Stores

private func runsFile(_ dir: TempDirectory) -> String { dir.path + "/" + JSONLRunStore.fileName }

private func runLines(_ dir: TempDirectory) throws -> [String] {
    let text = try String(contentsOfFile: runsFile(dir), encoding: .utf8)
    return text.split(separator: "\n").map(String.init)
}

private func appendRaw(_ dir: TempDirectory, _ text: String) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: runsFile(dir)))
    handle.seekToEndOfFile()
    handle.write(Data(text.utf8))
    try handle.close()
}

private let t0 = Date(timeIntervalSince1970: 1_795_000_000.123)

private func running(_ id: String, story: String = "s1", at created: Date = t0) -> RunRecord {
    RunRecord(runID: id, flow: "default", storyID: story, status: .running, createdAt: created)
}

private func succeeded(_ record: RunRecord, _ result: String = "done", at finished: Date = t0.addingTimeInterval(1.5)) -> RunRecord {
    var r = record
    r.status = .succeeded
    r.result = result
    r.finishedAt = finished
    return r
}

private func sampleEvents(_ id: String, count: Int = 4) -> [RunEvent] {
    (1...count).map { k in
        k == count
            ? RunEvent(id: k, name: "done", data: ["result": "done", "pending_docs": nil, "run_id": .string(id)])
            : RunEvent(id: k, name: "progress", data: ["run_id": .string(id), "agent": .string("a\(k)"), "status": "started", "timestamp": 1.5])
    }
}

private func open(_ dir: TempDirectory, logger: Logger = Logger(label: "test"), compactionMinimum: Int = JSONLRunStore.defaultCompactionMinimum) async throws -> JSONLRunStore {
    try await JSONLRunStore.open(directory: dir.url, logger: logger, compactionMinimum: compactionMinimum)
}

@Test func recordJSONHasExactlyTheContractKeys() throws {
    var r = RunRecord(runID: "r1", flow: "default", storyID: "s1", status: .pendingDocs, pendingDocs: ["prd", "arch"],
                      createdAt: Date(timeIntervalSince1970: 1_795_000_000.1234))
    r.finishedAt = Date(timeIntervalSince1970: 1_795_000_001)
    let json = r.json
    #expect(json.objectValue?.keys == ["run_id", "flow", "story_id", "status", "result", "pending_docs", "error", "created_at", "finished_at", "resumed", "usage"])
    #expect(json["resumed"] == 0)
    #expect(json["status"] == "pending_docs")
    #expect(json["result"] == .null)
    #expect(json["error"] == .null)
    #expect(json["pending_docs"] == ["prd", "arch"])
    #expect(json["created_at"] == "2026-11-18T11:06:40.123Z")
    #expect(json["finished_at"] == "2026-11-18T11:06:41.000Z")
    #expect(RunRecord(json: json) == r)
    var bytes: [UInt8] = []
    r.appendJSON(to: &bytes)
    #expect(try JSONValue.parse(bytes) == r.storedJSON, "the stores keep the record with its input")
    #expect(r.storedJSON["input"] == "")
    #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"run_id":"r1","flow":"default","story_id":"s1","status":"pending_docs""#))
    #expect(running("x").json["finished_at"] == .null)
    #expect(json["usage"] == ["prompt_tokens": 0, "completion_tokens": 0])
}

@Test func usageIsKeptWithTheRecordAndEachJournaledStep() throws {
    var r = RunRecord(runID: "r2", flow: "default", storyID: "s1", status: .failed, createdAt: Date(), retryOf: "r1")
    r.usage = RunUsage(promptTokens: 12, completionTokens: 34)
    var bytes: [UInt8] = []
    r.appendJSON(to: &bytes)
    #expect(try JSONValue.parse(bytes) == r.storedJSON)
    #expect(r.json.objectValue?.keys.suffix(2) == ["usage", "retry_of"])
    #expect(RunRecord(json: r.storedJSON) == r)
    #expect(RunRecord(json: ["run_id": "a", "flow": "f", "story_id": "s", "status": "queued", "created_at": "2026-11-18T11:06:40.123Z"])?.usage
            == RunUsage(), "a record stored before usage existed reads as zeros")
    for usage in [RunUsage(promptTokens: 5, completionTokens: 6), nil] {
        let step = RunStep(agent: "a", prompt: "p", output: "o", action: nil, usage: usage)
        var stepBytes: [UInt8] = []
        step.appendJSON(to: &stepBytes)
        #expect(try JSONValue.parse(stepBytes) == step.json)
        #expect(RunStep(json: step.json) == step)
        #expect((step.json["usage"] != nil) == (usage != nil))
    }
}

@Test func isoTimesRoundTrip() {
    for ms: Int64 in [0, 1, 999, 86_399_999, 951_782_400_000, 1_795_000_000_123, 253_402_300_799_999, -1, -86_400_001] {
        let s = ISOTime.string(milliseconds: ms)
        #expect(ISOTime.milliseconds(parsing: s) == ms, "\(s)")
    }
    #expect(ISOTime.string(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
    #expect(ISOTime.string(milliseconds: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
    #expect(ISOTime.milliseconds(parsing: "2026-11-25T12:00:00Z") == ISOTime.milliseconds(parsing: "2026-11-25T12:00:00.000Z"))
    #expect(ISOTime.milliseconds(parsing: "2026-11-25T12:00:00.1239+00:00") == ISOTime.milliseconds(parsing: "2026-11-25T12:00:00.124Z"))
    for bad in ["", "2026-02-30T00:00:00Z", "2026-11-25 12:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T12:00:00", "2026-11-25T12:00:00.Z", "2026-11-25T12:00:00+01:00"] {
        #expect(ISOTime.milliseconds(parsing: bad) == nil, "\(bad)")
    }
}

@Test func createFinishAndReadBack() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await open(dir)
    let r = running("r1")
    try await store.create(r, durable: true)
    #expect(try await store.record("r1") == r)
    #expect(try await store.events("r1", after: 0) == nil)  // not finished
    #expect(try await store.record("nope") == nil)
    #expect(try await store.events("nope", after: 0) == nil)
    #expect(try await store.record("../x") == nil)

    let final = succeeded(r, "line1\n\"quoted\" é")
    let events = sampleEvents("r1")
    try await store.finish(final, events: events)
    #expect(try await store.record("r1") == final)
    #expect(try await store.events("r1", after: 0) == events)
    #expect(try await store.events("r1", after: 2) == Array(events[2...]))
    #expect(try await store.events("r1", after: 4) == [])
    #expect(try await store.events("r1", after: -5) == events)

    // A finish with no events, and a finish without a create.
    let lone = succeeded(running("r2"))
    try await store.finish(lone, events: [])
    #expect(try await store.events("r2", after: 0) == [])
    #expect(try await store.record("r2") == lone)

    let lines = try runLines(dir)
    #expect(lines.count == 3)
    #expect(lines[0].hasPrefix(#"{"op":"start","run":{"run_id":"r1""#))
    #expect(lines[1].hasPrefix(#"{"op":"finish","run":{"run_id":"r1""#))
    #expect(lines[1].contains(#""events":[{"id":1,"event":"progress","data":{"#))
    let stats = await store.statistics
    #expect(stats.liveRuns == 0 && stats.finishedRuns == 2 && stats.pendingBytes == 0)
    try await store.close()
}

@Test func invalidWritesAreRefused() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await open(dir)
    await #expect(throws: StoreError.self) { try await store.create(running("bad/id"), durable: true) }
    await #expect(throws: StoreError.self) { try await store.create(succeeded(running("r1")), durable: true) }
    await #expect(throws: StoreError.self) { try await store.finish(running("r1"), events: []) }
    try await store.close()
    await #expect(throws: StoreError.self) { try await store.create(running("r1"), durable: false) }
    #expect(try runLines(dir).isEmpty)
}

@Test func nonDurableCreatesAreWrittenBeforeTheirFinishAndWhenIdle() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await open(dir)
    try await store.create(running("a"), durable: false)
    #expect(try await store.record("a")?.status == .running)
    try await store.finish(succeeded(running("a")), events: sampleEvents("a"))
    var lines = try runLines(dir)
    #expect(lines.count == 2)
    #expect(lines[0].contains(#""op":"start""#) && lines[1].contains(#""op":"finish""#))

    // Nothing else comes: the idle flush writes it shortly.
    try await store.create(running("b"), durable: false)
    try await waitUntil("the idle flush") { try runLines(dir).count >= 3 }
    lines = try runLines(dir)
    #expect(lines.count == 3)
    try await store.create(running("c"), durable: false)
    try await store.flush()
    #expect(try runLines(dir).count == 4)
    try await store.close()
}

@Test func reopenSeesEverything() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    var expected: [String: (RunRecord, [RunEvent])] = [:]
    do {
        let store = try await open(dir)
        for k in 0..<50 {
            let id = "run-\(k)"
            let r = running(id, story: "s\(k % 5)", at: t0.addingTimeInterval(Double(k)))
            try await store.create(r, durable: k % 2 == 0)
            var final = succeeded(r, "result \(k)", at: t0.addingTimeInterval(Double(k) + 0.25))
            if k % 7 == 0 {
                final.status = .failed
                final.result = nil
                final.error = "Flow execution failed: a1: boom"
            }
            let events = sampleEvents(id, count: 1 + k % 6)
            try await store.finish(final, events: events)
            expected[id] = (final, events)
        }
        try await store.close()
    }
    let store = try await open(dir)
    for (id, (record, events)) in expected {
        #expect(try await store.record(id) == record)
        #expect(try await store.events(id, after: 0) == events)
        #expect(try await store.events(id, after: 1) == Array(events.dropFirst()))
    }
    let stats = await store.statistics
    #expect(stats.finishedRuns == 50 && stats.liveRuns == 0 && stats.lines == 100)
    try await store.close()
}

@Test func interruptedRunsReadFailedAfterReopen() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let queued = RunRecord(runID: "q1", flow: "default", storyID: "s1", status: .queued, createdAt: t0)
    do {
        let store = try await open(dir)
        try await store.create(queued, durable: true)
        try await store.create(running("r1"), durable: true)
        try await store.create(running("r2"), durable: false)
        try await store.finish(succeeded(running("r2")), events: sampleEvents("r2"))
        // No close: as if the process died (the lock goes with the store).
    }
    let before = Date()
    let recorder = LogRecorder()
    do {
        let store = try await open(dir, logger: recorder.logger)
        let q = try #require(try await store.record("q1"))
        #expect(q.status == .failed)
        #expect(q.error == "flowd stopped while the run was queued")
        #expect(q.createdAt == queued.createdAt)
        #expect(try #require(q.finishedAt) >= before.addingTimeInterval(-0.001))
        let r = try #require(try await store.record("r1"))
        #expect(r.status == .failed && r.error == "flowd stopped while the run was running")
        let events = try #require(try await store.events("r1", after: 0))
        #expect(events.count == 1)
        #expect(events[0].name == "error" && events[0].id == 1)
        #expect(events[0].data["detail"] == "flowd stopped while the run was running")
        #expect(events[0].data["run_id"] == "r1")
        #expect(try await store.record("r2")?.status == .succeeded)
        #expect(recorder.warnings().contains { $0.contains("interrupted") })
        #expect(await store.statistics.liveRuns == 0)
    }
    // The failure was written at open: a second reopen reads the same, and writes nothing more.
    let linesAfterFirst = try runLines(dir).count
    let store = try await open(dir)
    let q = try #require(try await store.record("q1"))
    #expect(q.status == .failed && q.error == "flowd stopped while the run was queued")
    #expect(try await store.record("r1")?.status == .failed)
    #expect(try runLines(dir).count == linesAfterFirst)
    try await store.close()
}

@Test func tornLastLineIsSkippedAndCutOff() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
        let store = try await open(dir)
        try await store.create(running("a"), durable: false)
        try await store.finish(succeeded(running("a")), events: sampleEvents("a"))
        try await store.close()
    }
    let goodSize = try FileManager.default.attributesOfItem(atPath: runsFile(dir))[.size] as! Int
    try appendRaw(dir, #"{"op":"finish","run":{"run_id":"b","flow":"default","#)
    let recorder = LogRecorder()
    do {
        let store = try await open(dir, logger: recorder.logger)
        #expect(try await store.record("a")?.status == .succeeded)
        #expect(try await store.record("b") == nil)
        #expect(recorder.warnings().contains { $0.contains("torn last line") })
        #expect(try FileManager.default.attributesOfItem(atPath: runsFile(dir))[.size] as! Int == goodSize)
        // Appends start on a clean line.
        try await store.finish(succeeded(running("c")), events: sampleEvents("c"))
        try await store.close()
    }
    // A complete but unparsable last line, and a corrupt line in the middle.
    try appendRaw(dir, "{not json}\n")
    let store = try await open(dir)
    #expect(try await store.events("c", after: 0) == sampleEvents("c"))
    try await store.finish(succeeded(running("d")), events: [])
    try await store.close()
    // A corrupt line followed by a good one: skipped, kept, nothing after it lost.
    var good: [UInt8] = []
    _ = RunLog.appendFinish(succeeded(running("e")), events: sampleEvents("e"), to: &good)
    try appendRaw(dir, "garbage\n\n" + String(decoding: good, as: UTF8.self))
    let recorder2 = LogRecorder()
    let last = try await open(dir, logger: recorder2.logger)
    #expect(recorder2.warnings().contains { $0.contains("corrupt line") && $0.contains("line=") })
    for id in ["a", "c", "d", "e"] { #expect(try await last.record(id)?.status == .succeeded) }
    #expect(try await last.events("e", after: 0) == sampleEvents("e"))
    #expect(try runLines(dir).contains("garbage"))
    try await last.close()
}

@Test func pruneDropsOldFinishedRunsDurably() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let now = Date()
    let cutoff = now.addingTimeInterval(-168 * 3600)
    do {
        let store = try await open(dir)
        for k in 0..<10 {
            let old = k < 6
            let finishedAt = old ? cutoff.addingTimeInterval(-Double(k + 1) * 60) : now.addingTimeInterval(-Double(k))
            let r = running("r\(k)", at: finishedAt.addingTimeInterval(-1))
            try await store.create(r, durable: false)
            try await store.finish(succeeded(r, at: finishedAt), events: sampleEvents("r\(k)"))
        }
        try await store.create(running("live", at: cutoff.addingTimeInterval(-3600)), durable: true)
        #expect(try await store.prune(finishedBefore: cutoff) == 6)
        #expect(try await store.prune(finishedBefore: cutoff) == 0)
        for k in 0..<10 { #expect((try await store.record("r\(k)") == nil) == (k < 6)) }
        #expect(try await store.events("r0", after: 0) == nil)
        #expect(try await store.record("live")?.status == .running)  // only finished runs are pruned
        try await store.close()
    }
    let store = try await open(dir)
    for k in 0..<10 { #expect((try await store.record("r\(k)") == nil) == (k < 6)) }
    #expect(try await store.events("r7", after: 0) == sampleEvents("r7"))
    try await store.close()
}

@Test func compactionKeepsEveryLiveRunReadable() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let now = Date()
    let recorder = LogRecorder()
    let store = try await open(dir, logger: recorder.logger, compactionMinimum: 100)
    // 300 old runs, 40 recent ones, 3 live ones.
    for k in 0..<340 {
        let old = k < 300
        let at = old ? now.addingTimeInterval(-1000 * 3600) : now
        let r = running("r\(k)", at: at)
        try await store.create(r, durable: false)
        try await store.finish(succeeded(r, "out \(k)", at: at), events: sampleEvents("r\(k)", count: 1 + k % 5))
    }
    for k in 0..<3 { try await store.create(running("live\(k)"), durable: true) }
    #expect(try await store.prune(finishedBefore: now.addingTimeInterval(-168 * 3600)) == 300)
    // The prune's batch left 684 lines for 43 live runs: compacted.
    #expect(recorder.entries.withLock { $0.contains { $0.text.contains("runs: compacted") } })
    var stats = await store.statistics
    #expect(stats.lines == 43)
    #expect(try runLines(dir).count == 43)
    #expect(!FileManager.default.fileExists(atPath: runsFile(dir) + ".compact"))
    func check(_ store: JSONLRunStore) async throws {
        for k in 300..<340 {
            #expect(try await store.record("r\(k)")?.result == "out \(k)")
            #expect(try await store.events("r\(k)", after: 0) == sampleEvents("r\(k)", count: 1 + k % 5))
        }
        for k in 0..<300 { #expect(try await store.record("r\(k)") == nil) }
    }
    try await check(store)
    for k in 0..<3 { #expect(try await store.record("live\(k)")?.status == .running) }
    // Appends after compaction land in the new file at the right offsets.
    try await store.finish(succeeded(running("live0")), events: sampleEvents("live0"))
    #expect(try await store.events("live0", after: 3) == [sampleEvents("live0")[3]])
    stats = await store.statistics
    #expect(stats.finishedRuns == 41)
    try await store.close()

    let reopened = try await open(dir)
    try await check(reopened)
    #expect(try await reopened.record("live0")?.status == .succeeded)
    #expect(try await reopened.record("live1")?.status == .failed)
    try await reopened.close()
}

@Test func concurrentFinishesAreAllDurable() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
    let store = try await open(dir)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<64 {
            group.addTask {
                for k in 0..<20 {
                    let id = "w\(w)-\(k)"
                    let r = running(id, story: "s\(w)")
                    try await store.create(r, durable: false)
                    try await store.finish(succeeded(r, "\(w)/\(k)"), events: sampleEvents(id, count: 3))
                }
            }
        }
        try await group.waitForAll()
    }
    _ = store
    }
    let lines = try runLines(dir).count
    #expect(lines == 64 * 20 * 2)
    // No close: the next open must see every acknowledged finish.
    let reopened = try await JSONLRunStore.open(directory: dir.url, logger: Logger(label: "test"))
    for w in 0..<64 {
        for k in 0..<20 {
            let id = "w\(w)-\(k)"
            #expect(try await reopened.record(id)?.result == "\(w)/\(k)")
            #expect(try await reopened.events(id, after: 2)?.map(\.name) == ["done"])
        }
    }
    #expect(await reopened.statistics.liveRuns == 0)
}

@Test func theIndexHoldsNoEventsForFinishedRuns() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await open(dir)
    let n = 50_000
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<50 {
            group.addTask {
                for k in stride(from: w, to: n, by: 50) {
                    let r = running("r\(k)")
                    try await store.create(r, durable: false)
                    try await store.finish(succeeded(r), events: sampleEvents("r\(k)", count: 6))
                }
            }
        }
        try await group.waitForAll()
    }
    // By design: a finished run is a fixed-size entry (where its line is); records and
    // events are read from the file. Nothing is pending, nothing is live.
    let stats = await store.statistics
    #expect(stats.finishedRuns == n && stats.liveRuns == 0 && stats.pendingBytes == 0)
    #expect(MemoryLayout<RunLog.FinishedEntry>.stride <= 40)
    #expect(try await store.events("r49999", after: 5)?.map(\.name) == ["done"])
    #expect(try await store.record("r12345")?.status == .succeeded)
    try await store.close()
}

@Test func aSecondProcessIsLockedOut() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await open(dir)
    await #expect(throws: StoreError.self) { _ = try await open(dir) }
    try await store.close()
    let again = try await open(dir)
    try await again.close()
}

@Test func compactionUnderConcurrentFinishesAndPrunesLosesNothing() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let now = Date()
    let old = now.addingTimeInterval(-1000 * 3600)
    let recorder = LogRecorder()
    do {
        let store = try await open(dir, logger: recorder.logger, compactionMinimum: 50)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    for k in 0..<60 {
                        let id = "w\(w)-\(k)"
                        let at = k % 3 == 0 ? now : old
                        let r = running(id, at: at)
                        try await store.create(r, durable: k % 2 == 0)
                        try await store.finish(succeeded(r, id, at: at), events: sampleEvents(id, count: 1 + k % 4))
                    }
                }
            }
            group.addTask {
                for _ in 0..<30 {
                    _ = try await store.prune(finishedBefore: now.addingTimeInterval(-3600))
                    try await Task.sleep(for: .milliseconds(2))
                }
            }
            try await group.waitForAll()
        }
        _ = try await store.prune(finishedBefore: now.addingTimeInterval(-3600))
        try await store.close()
    }
    #expect(recorder.entries.withLock { $0.contains { $0.text.contains("runs: compacted") } })
    let store = try await open(dir)
    for w in 0..<16 {
        for k in 0..<60 {
            let id = "w\(w)-\(k)"
            if k % 3 == 0 {
                #expect(try await store.record(id)?.result == id)
                #expect(try await store.events(id, after: 0) == sampleEvents(id, count: 1 + k % 4))
            } else {
                #expect(try await store.record(id) == nil)
            }
        }
    }
    #expect(await store.statistics.finishedRuns == 16 * 20)
    try await store.close()
}
