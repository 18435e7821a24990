import FlowdJSON
import Foundation
import Logging
import Testing

@testable import Stores

private func memoryFile(_ dir: TempDirectory) -> String { dir.path + "/" + JSONLMemoryStore.fileName }

private func lines(_ dir: TempDirectory) throws -> [String] {
    let text = try String(contentsOfFile: memoryFile(dir), encoding: .utf8)
    return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
}

private func append(_ dir: TempDirectory, _ bytes: [UInt8]) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: memoryFile(dir)))
    handle.seekToEndOfFile()
    handle.write(Data(bytes))
    try handle.close()
}

@Test func invalidKeysAreRefusedAndNeverWritten() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    for key in ["", "../x", "a/b", ":a", "é"] {
        await #expect(throws: StoreError.self) { try await store.set(.global, key, 1) }
        #expect(try await store.get(.global, key) == nil)
        #expect(try await !store.delete(.global, key))
    }
    var tx = MemoryTransaction()
    tx.set(.global, "good", 1)
    tx.set(.global, "bad/key", 2)
    await #expect(throws: StoreError.self) { try await store.commit(tx) }
    #expect(try await store.get(.global, "good") == nil)
    try await store.close()
    #expect(try lines(dir) == [""])
}

@Test func reopeningSeesEveryAcknowledgedWrite() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let value: JSONValue = ["text": "line\nbreak \"quoted\" é 😀", "n": 9_007_199_254_740_993, "d": 0.1, "nested": ["a": [nil, true]]]
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await store.set(.isolated, "a:1", value)
        try await store.set(.shared, "s", "x")
        try await store.set(.shared, "gone", "x")
        _ = try await store.delete(.shared, "gone")
        try await store.close()
    }
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    #expect(try await store.get(.isolated, "a:1") == value)
    #expect(try await store.get(.shared, "s") == "x")
    #expect(try await store.get(.shared, "gone") == nil)
    try await store.close()
    // Human-readable: one JSON object per line.
    let l = try lines(dir)
    #expect(l.count == 5 && l.last == "")
    #expect(l[0].hasPrefix(#"{"op":"set","scope":"isolated","key":"a:1","value":{"text":"#))
    #expect(l[3] == #"{"op":"del","scope":"shared","key":"gone"}"#)
}

@Test func aSecondOpenOfTheSameDirectoryIsRefused() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    do {
        _ = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        Issue.record("second open succeeded")
    } catch {
        #expect(error.kind == .locked)
    }
    try await store.close()
    let again = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    try await again.close()
}

@Test func openCreatesAMissingDirectory() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let nested = dir.url.appendingPathComponent("a/b/data")
    let store = try await JSONLMemoryStore.open(directory: nested, logger: Logger(label: "test"))
    try await store.set(.global, "k", 1)
    try await store.close()
    #expect(FileManager.default.fileExists(atPath: nested.path + "/memory.jsonl"))
}

@Test func aDroppedTransactionLeavesNothingAndACommittedOneIsWhole() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await store.set(.isolated, "a:s", ["status": "completed", "last_output": "old"])
        var dropped = MemoryTransaction()
        dropped.set(.isolated, "a:s", ["status": "completed", "last_output": "new"])
        dropped.set(.shared, "s", "x")
        #expect(!dropped.isEmpty)
        _ = dropped  // never committed

        var tx = MemoryTransaction()
        tx.set(.isolated, "a:t", ["status": "completed", "last_output": "t"])
        tx.set(.isolated, "b:t", ["status": "initialized"])
        tx.set(.shared, "t", ["turns": 1])
        tx.delete(.isolated, "a:s")
        tx.set(.global, "count", 1)
        try await store.commit(tx)
        try await store.commit(MemoryTransaction())
        try await store.close()
    }
    // The transaction is one line.
    #expect(try lines(dir).filter { $0.hasPrefix(#"{"tx":["#) }.count == 1)
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    #expect(try await store.get(.isolated, "a:s") == nil)
    #expect(try await store.get(.shared, "s") == nil)
    #expect(try await store.get(.isolated, "a:t")?["last_output"] == "t")
    #expect(try await store.get(.isolated, "b:t")?["status"] == "initialized")
    #expect(try await store.get(.shared, "t") == ["turns": 1])
    #expect(try await store.get(.global, "count") == 1)
    try await store.close()
}

@Test func aTornTransactionIsDroppedWhole() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await store.set(.global, "before", 1)
        try await store.close()
    }
    var torn: [UInt8] = []
    MemoryLog.appendLine([.set(.global, key: "x", value: 1), .set(.global, key: "y", value: 2)], to: &torn)
    try append(dir, Array(torn.dropLast(5)))
    let recorder = LogRecorder()
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder.logger)
    #expect(try await store.get(.global, "before") == 1)
    #expect(try await store.get(.global, "x") == nil)
    #expect(try await store.get(.global, "y") == nil)
    #expect(recorder.warnings().count == 1)
    try await store.close()
}

@Test func aTornLastLineIsSkippedAndCutOff() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await store.set(.global, "a", 1)
        try await store.set(.global, "b", 2)
        try await store.close()
    }
    try append(dir, Array(#"{"op":"set","scope":"global","key":"c","val"#.utf8))
    let recorder = LogRecorder()
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder.logger)
        #expect(try await store.get(.global, "a") == 1)
        #expect(try await store.get(.global, "b") == 2)
        #expect(try await store.get(.global, "c") == nil)
        let warnings = recorder.warnings()
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("torn") == true)
        #expect(warnings.first?.contains("line=3") == true)
        try await store.set(.global, "d", 4)
        try await store.close()
    }
    // The new append starts on a clean line.
    #expect(try lines(dir) == [
        #"{"op":"set","scope":"global","key":"a","value":1}"#,
        #"{"op":"set","scope":"global","key":"b","value":2}"#,
        #"{"op":"set","scope":"global","key":"d","value":4}"#,
        "",
    ])
    let recorder2 = LogRecorder()
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder2.logger)
    #expect(try await store.get(.global, "d") == 4)
    #expect(recorder2.warnings().isEmpty)
    try await store.close()
}

@Test func anUnparsableLastLineWithNewlineIsCutOffToo() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await store.set(.global, "a", 1)
        try await store.close()
    }
    try append(dir, [0, 0, 0, 0x0A])
    let recorder = LogRecorder()
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder.logger)
    #expect(try await store.get(.global, "a") == 1)
    #expect(recorder.warnings().count == 1)
    try await store.set(.global, "b", 2)
    try await store.close()
    #expect(try lines(dir).count == 3)
}

@Test func aCorruptMiddleLineIsSkippedAndLaterLinesSurvive() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await store.set(.global, "a", 1)
        try await store.close()
    }
    try append(dir, Array("garbage{{\n".utf8))
    try append(dir, Array(#"{"op":"frobnicate","scope":"global","key":"z"}"#.utf8) + [0x0A])
    try append(dir, Array(#"{"op":"set","scope":"global","key":"b","value":2}"#.utf8) + [0x0A])
    let recorder = LogRecorder()
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder.logger)
    #expect(try await store.get(.global, "a") == 1)
    #expect(try await store.get(.global, "b") == 2)
    let warnings = recorder.warnings()
    #expect(warnings.count == 2)
    #expect(warnings.contains { $0.contains("line=2") && $0.contains(JSONLMemoryStore.fileName) })
    #expect(warnings.contains { $0.contains("line=3") })
    try await store.close()
    #expect(try lines(dir).count == 5)  // corrupt lines stay until compaction
}

@Test func sixtyFourConcurrentWritersAreAllDurable() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let perWriter = 50
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<64 {
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
                        // Read-your-writes: acknowledged means visible.
                        #expect(try await store.get(.isolated, "w\(w):k\(k)") != nil)
                    }
                }
            }
            try await group.waitForAll()
        }
        try await store.flush()
        try await store.close()
    }
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    #expect(try await store.list(.isolated, prefix: "").count == 64 * perWriter)
    for w in 0..<64 {
        #expect(try await store.get(.shared, "w\(w)") == .int(Int64(perWriter - 1)))
        #expect(try await store.get(.isolated, "w\(w):k7") == ["w": .int(Int64(w)), "k": 7])
    }
    try await store.close()
}

@Test func compactionUnderConcurrentWritesLosesNothingAndShrinksTheFile() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let recorder = LogRecorder()
    var expected: [String: JSONValue] = [:]
    do {
        let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder.logger, compactionMinimum: 500)
        // 16 writers overwrite 10 keys each, 100 times: 16,000 writes over 160 live keys.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    for round in 0..<100 {
                        for k in 0..<10 {
                            try await store.set(.shared, "w\(w)-k\(k)", ["round": .int(Int64(round)), "pad": "xxxxxxxxxxxxxxxx"])
                        }
                        if round == 50 { _ = try await store.delete(.shared, "w\(w)-k0") }
                    }
                }
            }
            try await group.waitForAll()
        }
        for w in 0..<16 {
            for k in 0..<10 { expected["w\(w)-k\(k)"] = ["round": 99, "pad": "xxxxxxxxxxxxxxxx"] }
        }
        #expect(recorder.entries.withLock { $0.contains { $0.text.hasPrefix("memory: compacted") } })
        try await store.close()
    }
    let lineCount = try lines(dir).count - 1
    #expect(lineCount < 4 * 160 + 500 + 1)
    #expect(!FileManager.default.fileExists(atPath: dir.path + "/" + JSONLMemoryStore.compactionFileName))
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    let all = try await store.list(.shared, prefix: "")
    #expect(all.count == 160)
    for (key, value) in all { #expect(expected[key] == value, "\(key)") }
    try await store.close()
}

@Test func flushWaitsForWritesInProgress() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"))
    try await store.flush()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for k in 0..<20 { group.addTask { try await store.set(.global, "k\(k)", .int(Int64(k))) } }
        group.addTask { try await store.flush() }
        try await group.waitForAll()
    }
    try await store.close()
    await #expect(throws: StoreError.self) { try await store.set(.global, "late", 1) }
}

/// Throughput of acknowledged writes with 64 writers, and replay time of the file they
/// leave. Disabled by default; run with
/// `FLOWD_MEASURE=1 swift test -c release --filter StoresTests.measureWriteAndReplayThroughput`.
@Test(.enabled(if: ProcessInfo.processInfo.environment["FLOWD_MEASURE"] != nil))
func measureWriteAndReplayThroughput() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let writers = 64
    let perWriter = 1_000
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"), compactionMinimum: .max)
    let clock = ContinuousClock()
    let writeTime = try await clock.measure {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for k in 0..<perWriter {
                        try await store.set(.isolated, "agent\(w):story\(k)", ["status": "completed", "last_output": "some output text", "n": .int(Int64(k))])
                    }
                }
            }
            try await group.waitForAll()
        }
    }
    try await store.close()
    let seconds = Double(writeTime.components.seconds) + Double(writeTime.components.attoseconds) / 1e18
    print("group commit: \(writers * perWriter) acknowledged writes by \(writers) writers in \(writeTime): \(Int(Double(writers * perWriter) / seconds))/s")

    // Replay: grow the file to 1,000,000 records by hand, then open it.
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: memoryFile(dir)))
    handle.seekToEndOfFile()
    var chunk: [UInt8] = []
    for k in writers * perWriter..<1_000_000 {
        MemoryLog.appendLine([.set(.isolated, key: "agent\(k % 100):story\(k)", value: ["status": "completed", "last_output": "some output text", "n": .int(Int64(k))])], to: &chunk)
        if chunk.count > 1 << 20 {
            handle.write(Data(chunk))
            chunk.removeAll(keepingCapacity: true)
        }
    }
    handle.write(Data(chunk))
    try handle.close()
    var reopened: JSONLMemoryStore?
    let replayTime = try await clock.measure {
        reopened = try await JSONLMemoryStore.open(directory: dir.url, logger: Logger(label: "test"), compactionMinimum: .max)
    }
    print("replay: 1,000,000 records in \(replayTime)")
    #expect(try await reopened?.list(.isolated, prefix: "agent7:").count == 10_360)
    try await reopened?.close()
}

@Test func replayReadsRecordsWhateverTheirMemberOrderOrEscapes() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    try Data().write(to: URL(fileURLWithPath: memoryFile(dir)))
    let text = [
        #"{"value":{"a":[1,2]},"key":"k1","scope":"global","op":"set"}"#,
        #"{"o\u0070":"set","scope":"shared","key":"k\u0032","value":"two"}"#,
        #"  {"op":"set","scope":"isolated","key":"k3","value":3}  "#,
        #"{"tx":[{"op":"set","scope":"global","key":"t","value":true},{"op":"del","scope":"global","key":"k1"}]}"#,
        #"{"op":"set","scope":"nowhere","key":"k4","value":4}"#,
        #"{"op":"set","scope":"global","key":"k5","value":5}"#,
        "",
    ].joined(separator: "\n")
    try append(dir, Array(text.utf8))
    let recorder = LogRecorder()
    let store = try await JSONLMemoryStore.open(directory: dir.url, logger: recorder.logger)
    #expect(try await store.get(.global, "k1") == nil)
    #expect(try await store.get(.shared, "k2") == "two")
    #expect(try await store.get(.isolated, "k3") == 3)
    #expect(try await store.get(.global, "t") == true)
    #expect(try await store.get(.global, "k4") == nil)
    #expect(try await store.get(.global, "k5") == 5)
    #expect(recorder.warnings().count == 1)
    try await store.close()
}
