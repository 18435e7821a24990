import Foundation
import Logging
import Testing

@testable import Stores

// A run's finish carried by its memory transaction: one durable write for both logs, the
// run store writing its own copy later, and nothing lost when it never did.

private let t0 = Date(timeIntervalSince1970: 1_795_000_000.123)

private func finished(_ id: String, story: String = "s1") -> RunRecord {
    var record = RunRecord(runID: id, flow: "default", storyID: story, status: .running, createdAt: t0)
    record.status = .succeeded
    record.result = "result of \(id)"
    record.finishedAt = t0.addingTimeInterval(2)
    return record
}

private func events(_ id: String) -> [RunEvent] {
    [
        RunEvent(id: 1, name: "progress", data: ["run_id": .string(id), "agent": "analyst", "status": "started"]),
        RunEvent(id: 2, name: "done", data: ["result": .string("result of \(id)"), "pending_docs": nil, "run_id": .string(id)]),
    ]
}

private func transaction(_ id: String, key: String? = nil) throws -> MemoryTransaction {
    var t = MemoryTransaction()
    t.set(.isolated, key ?? "analyst:\(id)", ["status": "completed", "last_output": .string("out \(id)")])
    return t
}

private func runFinish(_ id: String) -> RunFinish { RunFinish(record: finished(id), events: events(id)) }

private func lines(_ dir: TempDirectory, _ name: String) throws -> [String] {
    let text = (try? String(contentsOfFile: dir.path + "/" + name, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").map(String.init)
}

/// A sink that keeps what it is handed and stores nothing: as if the process died before
/// the run store wrote its copy.
private actor ForgetfulSink: CarriedFinishSink {
    var accepted: [String] = []
    func accept(_ finishes: [CarriedFinish]) { accepted += finishes.map(\.runID) }
    func syncCarried() {}
}

@Test func aCarriedFinishIsReadableWhenTheCommitReturnsAndLandsInBothLogs() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let (memory, runs) = try await JSONLStores.open(directory: dir.url, logger: Logger(label: "test"))
    try await runs.create(RunRecord(runID: "r1", flow: "default", storyID: "s1", status: .running, createdAt: t0), durable: true)
    try await memory.commit(try transaction("r1"), carrying: runFinish("r1"))

    // Readable at once, from the run store's RAM, with its events.
    #expect(try await runs.record("r1") == finished("r1"))
    #expect(try await runs.events("r1", after: 1) == Array(events("r1")[1...]))
    #expect(try await memory.get(.isolated, "analyst:r1")?["last_output"] == "out r1")
    let memoryLines = try lines(dir, JSONLMemoryStore.fileName)
    #expect(memoryLines.count == 1)
    #expect(memoryLines[0].hasPrefix(#"{"tx":[{"op":"set","scope":"isolated","key":"analyst:r1""#))
    #expect(memoryLines[0].contains(#"],"run":{"op":"finish","run":{"run_id":"r1""#))

    // The run store writes its own line without anyone waiting; syncCarried waits for it.
    try await runs.syncCarried()
    let runLines = try lines(dir, JSONLRunStore.fileName)
    #expect(runLines.count == 2)
    #expect(runLines[1].hasPrefix(#"{"op":"finish","run":{"run_id":"r1""#))
    try await memory.close()
    try await runs.close()

    // Reopened: everything is there once, and a second open adopts nothing again.
    for _ in 0..<2 {
        let (memory, runs) = try await JSONLStores.open(directory: dir.url, logger: Logger(label: "test"))
        #expect(try await runs.record("r1") == finished("r1"))
        #expect(try await runs.events("r1", after: 0) == events("r1"))
        #expect(try await memory.get(.isolated, "analyst:r1")?["status"] == "completed")
        try await memory.close()
        try await runs.close()
        #expect(try lines(dir, JSONLRunStore.fileName).count == 2)
    }
}

@Test func aCarriedFinishTheRunStoreNeverWroteIsAdoptedAtOpen() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    // r2 was started durably (a background run); then both runs committed, and the process
    // died before the run store wrote either finish.
    do {
        let runs = try await JSONLRunStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await runs.create(RunRecord(runID: "r2", flow: "default", storyID: "s2", status: .running, createdAt: t0), durable: true)
        try await runs.close()
    }
    let sink = ForgetfulSink()
    do {
        let memory = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        await memory.attach(sink)
        try await memory.commit(try transaction("r1"), carrying: runFinish("r1"))
        try await memory.commit(try transaction("r2", key: "analyst:s2"), carrying: runFinish("r2"))
        try await memory.close()
    }
    #expect(await sink.accepted == ["r1", "r2"])
    #expect(try lines(dir, JSONLRunStore.fileName).count == 1)

    let recorder = LogRecorder()
    let (memory, runs) = try await JSONLStores.open(directory: dir.url, logger: recorder.logger)
    #expect(try await runs.record("r1") == finished("r1"))
    #expect(try await runs.events("r1", after: 0) == events("r1"))
    // Adopted before interrupted runs are failed: r2 succeeded, it was not interrupted.
    #expect(try await runs.record("r2")?.status == .succeeded)
    #expect(recorder.warnings().contains { $0.contains("found only in memory.jsonl") })
    #expect(!recorder.warnings().contains { $0.contains("interrupted") })
    #expect(try await memory.get(.isolated, "analyst:s2")?["last_output"] == "out r2")
    #expect(try lines(dir, JSONLRunStore.fileName).count == 3)
    try await memory.close()
    try await runs.close()
}

@Test func memoryCompactionLetsGoOfCarriedFinishesOnlyOnceTheRunStoreHasThem() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let ids = (1...60).map { "r\($0)" }
    let (memory, runs) = try await JSONLStores.open(directory: dir.url, logger: Logger(label: "test"), memoryCompactionMinimum: 10)
    // One key rewritten by every run: the file soon holds more than 4 lines per key.
    for id in ids { try await memory.commit(try transaction(id, key: "analyst:story"), carrying: runFinish(id)) }
    await memory.waitForCompaction()
    let memoryLines = try lines(dir, JSONLMemoryStore.fileName)
    #expect(memoryLines.count < ids.count)  // compacted at least once
    #expect(memoryLines.contains { $0.hasPrefix(#"{"op":"set","scope":"isolated","key":"analyst:story""#) })
    // Every finish no longer carried by memory.jsonl is in runs.jsonl already, as read from
    // the file now (before any close could flush the run store).
    let stillCarried = Set(ids.filter { id in memoryLines.contains { $0.contains(#""run":{"op":"finish","run":{"run_id":"\#(id)""#) } })
    let inRunsFile = Set(ids.filter { id in try! lines(dir, JSONLRunStore.fileName).contains { $0.hasPrefix(#"{"op":"finish","run":{"run_id":"\#(id)""#) } })
    #expect(stillCarried.count < ids.count)
    #expect(stillCarried.union(inRunsFile) == Set(ids))
    try await memory.close()
    try await runs.close()

    let (reopenedMemory, reopenedRuns) = try await JSONLStores.open(directory: dir.url, logger: Logger(label: "test"))
    for id in ids { #expect(try await reopenedRuns.record(id) == finished(id)) }
    #expect(try await reopenedMemory.get(.isolated, "analyst:story")?["last_output"] == "out r60")
    try await reopenedMemory.close()
    try await reopenedRuns.close()
}

@Test func carriedFinishesFillingTheFileTriggerACompaction() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let ids = (1...30).map { "r\($0)" }
    let (memory, runs) = try await JSONLStores.open(directory: dir.url, logger: Logger(label: "test"), carriedCompactionMinimum: 4096)
    // A new key per run: never 4 lines per key, so only the carried bytes can trigger it.
    for id in ids { try await memory.commit(try transaction(id), carrying: runFinish(id)) }
    await memory.waitForCompaction()
    let carriedLines = try lines(dir, JSONLMemoryStore.fileName).filter { $0.contains(#""run":{"op":"finish""#) }
    #expect(carriedLines.count < 10)
    try await memory.close()
    try await runs.close()
    let (reopenedMemory, reopenedRuns) = try await JSONLStores.open(directory: dir.url, logger: Logger(label: "test"))
    for id in ids {
        #expect(try await reopenedRuns.record(id) == finished(id))
        #expect(try await reopenedMemory.get(.isolated, "analyst:\(id)")?["last_output"] == .string("out \(id)"))
    }
    try await reopenedMemory.close()
    try await reopenedRuns.close()
}

@Test func aCarriedFinishNeedsARunStoreAttached() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let memory = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    await #expect(throws: StoreError.self) { try await memory.commit(try transaction("r1"), carrying: runFinish("r1")) }
    #expect(try await memory.get(.isolated, "analyst:r1") == nil)
    try await memory.close()
}
