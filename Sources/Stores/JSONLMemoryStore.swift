import FlowdJSON
import Foundation
import Glibc
import Logging

/// Memory kept in one JSONL file (`memory.jsonl`) under a data directory, served from an
/// in-memory cache. See `docs/storage.md` for the layout and the rules.
///
/// Invariants:
/// - A write returns only after its line was written and `fdatasync` returned.
/// - Readers see a write only once it is durable (the cache is updated when its sync
///   completes), so anything a reader saw survives a crash.
/// - Concurrent writes share one `write` + one `fdatasync` (group commit), done on a
///   dedicated thread, never on the cooperative pool nor while holding the actor.
/// - After a failed write or sync the store refuses every write (`.failed`) until it is
///   reopened: what reached the disk is then unknown, and replay decides.
/// - A transaction's `CarriedFinish` is written in its line and handed to the attached
///   sink (the run store) once the line is durable, before the transaction's writers are
///   told; compaction drops carried finishes only after the sink has synced them.
public actor JSONLMemoryStore: MemoryStore, GroupCommitting {
    public static let fileName = "memory.jsonl"
    static let lockFileName = "memory.lock"
    static let compactionFileName = "memory.jsonl.compact"
    private static let names = AppendLog.Names(
        file: fileName, lock: lockFileName, compaction: compactionFileName, lockedWhat: "memory is")

    /// Compaction starts when the file holds more than `compactionRatio` × live keys
    /// operations and more than `compactionMinimum` of them.
    public static let defaultCompactionMinimum = 10_000
    public static let compactionRatio = 4
    /// Compaction also starts when lines carrying run finishes (`CarriedFinish`), which the
    /// run store keeps too, exceed this many bytes and half the file.
    public static let defaultCarriedCompactionMinimum = 1 << 30

    private let path: String
    private let logger: Logger
    private let compactionMinimum: Int
    private let carriedCompactionMinimum: Int

    private var maps: [ShardedMap<JSONValue>]
    /// The file, its lock, its size and the failure latch.
    private let log: AppendLog
    private var records: Int
    /// Bytes of lines that carry a run finish, in the file.
    private var carriedBytes: Int

    /// Writes accepted but not yet written, and the batch being written.
    var commit = GroupCommit<MemoryTransaction.Operation>()
    private var failure: StoreError? { log.failure }
    private var isClosed = false
    /// After a failed compaction, the next attempt waits until the file holds this many records.
    private var compactionFloor = 0
    /// The compaction writing its snapshot in the background, if one is.
    private var compaction: Compaction?
    /// Operations of the batch being written, for `delete` to know what the key will be.
    private var inFlight: [MemoryTransaction.Operation] = []
    /// Where durable carried finishes go; nil until `attach`.
    private var sink: (any CarriedFinishSink)?
    /// Finishes carried by the pending batch's lines, and those lines' bytes.
    private var pendingCarried: [CarriedFinish] = []
    private var pendingCarriedBytes = 0
    /// Carried finishes found at open whose run the run store lacked, until taken.
    private var unstoredFinishes: [CarriedFinish]

    /// Opens (creating it if missing) the memory store in `directory` and replays its file.
    ///
    /// Takes an exclusive `flock` on `memory.lock` so that two processes never append to one
    /// file; throws `.locked` if another process holds it.
    ///
    /// With `isStoredRun` (`JSONLStores.open`), the finishes carried by its lines whose run
    /// that function does not know are kept for `takeUnstoredFinishes`.
    public static func open(
        directory: URL, logger: Logger, compactionMinimum: Int = defaultCompactionMinimum,
        carriedCompactionMinimum: Int = defaultCarriedCompactionMinimum,
        isStoredRun: (@Sendable (String) -> Bool)? = nil
    ) async throws(StoreError) -> JSONLMemoryStore {
        let (log, recovered) = try await AppendLog.open(
            directory: directory.path, names: names, label: "memory", logger: logger, io: IOThread(name: "flowd-memory")
        ) { fd, path throws(StoreError) in
            let start = Date()
            let recovered = try MemoryLog.replay(fd: fd, path: path, logger: logger, isStoredRun: isStoredRun)
            logger.info(
                "memory: loaded",
                metadata: [
                    "file": "\(path)", "records": "\(recovered.records)",
                    "keys": "\(recovered.maps.reduce(0) { $0 + $1.count })",
                    "seconds": "\(Date().timeIntervalSince(start))",
                ])
            return (recovered.fileSize, recovered)
        }
        return JSONLMemoryStore(
            logger: logger, compactionMinimum: compactionMinimum, carriedCompactionMinimum: carriedCompactionMinimum,
            log: log, recovered: recovered)
    }

    private init(
        logger: Logger, compactionMinimum: Int, carriedCompactionMinimum: Int, log: AppendLog, recovered: MemoryLog.Recovered
    ) {
        self.carriedCompactionMinimum = carriedCompactionMinimum
        self.carriedBytes = recovered.carriedBytes
        self.path = log.path
        self.logger = logger
        self.compactionMinimum = compactionMinimum
        self.maps = recovered.maps
        self.log = log
        self.records = recovered.records
        self.unstoredFinishes = recovered.unstoredFinishes
    }

    // MARK: Carried run finishes

    /// From now on, durable carried finishes go to `sink`.
    public func attach(_ sink: any CarriedFinishSink) {
        self.sink = sink
    }

    /// The carried finishes found at open whose run was not stored, in file order (once).
    public func takeUnstoredFinishes() -> [CarriedFinish] {
        defer { unstoredFinishes = [] }
        return unstoredFinishes
    }

    // MARK: Reads (from the cache: durable state only)

    public func get(_ scope: MemoryScope, _ key: String) throws(StoreError) -> JSONValue? {
        maps[scope.index][key]
    }

    public func getMany(_ scope: MemoryScope, _ keys: [String]) throws(StoreError) -> [String: JSONValue] {
        var found: [String: JSONValue] = [:]
        let map = maps[scope.index]
        for key in keys {
            if let v = map[key] { found[key] = v }
        }
        return found
    }

    public func list(_ scope: MemoryScope, prefix: String) throws(StoreError) -> [(key: String, value: JSONValue)] {
        var entries: [(key: String, value: JSONValue)] = []
        for (k, v) in maps[scope.index] where prefix.isEmpty || k.hasPrefix(prefix) {
            entries.append((k, v))
        }
        entries.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return entries
    }

    /// Live keys in all scopes.
    public var count: Int { maps.reduce(0) { $0 + $1.count } }

    // MARK: Writes

    public func set(_ scope: MemoryScope, _ key: String, _ value: JSONValue) async throws(StoreError) {
        try await write([.set(scope, key: key, value: value)])
    }

    public func delete(_ scope: MemoryScope, _ key: String) async throws(StoreError) -> Bool {
        guard Identifier.isValidMemoryKey(key) else { return false }
        // Absent when this delete will apply (batches apply in order): nothing to write.
        guard latestExists(scope, key) else { return false }
        try await write([.delete(scope, key: key)])
        return true
    }

    public func commit(_ transaction: MemoryTransaction) async throws(StoreError) {
        guard !transaction.isEmpty else { return }
        try await write(transaction.operations)
    }

    /// A run's success: its memory and its finish in one line, one `fdatasync`. The run store
    /// must be attached (`attach`): it gets the finish once the line is durable. The finish is
    /// encoded here, off the actor.
    nonisolated func commit(_ transaction: MemoryTransaction, carrying finish: RunFinish) async throws(StoreError) {
        let carried = try CarriedFinish(record: finish.record, events: finish.events)
        try await commit(transaction.operations, carrying: carried)
    }

    private func commit(_ operations: [MemoryTransaction.Operation], carrying carried: CarriedFinish) async throws(StoreError) {
        guard sink != nil else {
            throw StoreError(.invalidRecord, "a carried run finish needs a run store attached", path: path)
        }
        try await write(operations, carrying: carried)
    }

    public func flush() async throws(StoreError) {
        if let failure { throw failure }
        guard commit.syncing else { return }
        // Join the pending batch with no bytes: done when everything before it is durable.
        if try await awaitTurn() { try await lead() }
    }

    /// Flushes, then closes the file and releases the lock; later calls throw `.closed`.
    public func close() async throws(StoreError) {
        guard !isClosed else { return }
        // A batch flushed here may start a compaction: wait for it too, so that no
        // `memory.jsonl.compact` is written after close returns.
        while true {
            if let task = compaction?.task {
                await task.value
            } else if commit.syncing {
                try await flush()
            } else {
                break
            }
        }
        isClosed = true
        try await log.close()
    }

    /// Whether the key exists once every accepted write has applied.
    private func latestExists(_ scope: MemoryScope, _ key: String) -> Bool {
        for ops in [commit.pending.ops, inFlight] {
            if let last = ops.last(where: { $0.scope == scope && $0.key == key }) {
                if case .set = last { return true }
                return false
            }
        }
        return maps[scope.index][key] != nil
    }

    private func write(_ operations: [MemoryTransaction.Operation], carrying carried: CarriedFinish? = nil) async throws(StoreError) {
        for op in operations where !Identifier.isValidMemoryKey(op.key) {
            throw StoreError(.invalidKey, "invalid memory key \"\(op.key)\"")
        }
        if isClosed { throw StoreError(.closed, "memory store is closed", path: path) }
        if let failure { throw failure }

        let start = commit.pending.bytes.count
        MemoryLog.appendLine(operations, carrying: carried, to: &commit.pending.bytes)
        commit.pending.ops.append(contentsOf: operations)
        if let carried {
            pendingCarried.append(carried)
            pendingCarriedBytes += commit.pending.bytes.count - start
        }
        if try await awaitTurn() { try await lead() }
    }

    /// Writes and syncs the pending batch (which holds the caller's own write), hands its
    /// carried finishes to the sink, wakes its writers, starts a compaction if one is due,
    /// then hands the lead to a writer of the next batch. Called by the leader.
    private func lead() async throws(StoreError) {
        let batch = commit.takeBatch()
        let carried = pendingCarried
        let batchCarriedBytes = pendingCarriedBytes
        pendingCarried = []
        pendingCarriedBytes = 0
        inFlight = batch.ops
        defer { inFlight = [] }
        var error = failure
        if error == nil, !batch.bytes.isEmpty {
            do throws(StoreError) {
                try await log.append(batch.bytes)
                records += batch.ops.count
                carriedBytes += batchCarriedBytes
                if compaction != nil {
                    compaction?.recordsAfter += batch.ops.count
                    compaction?.carriedBytesAfter += batchCarriedBytes
                }
                for op in batch.ops { MemoryLog.apply(op, to: &maps) }
                // Before the writers hear of it: a run's record is readable when its answer goes out.
                if !carried.isEmpty, let sink { await sink.accept(carried) }
            } catch let e {
                // The log now refuses writes (`failure`).
                error = e
            }
        }
        GroupCommit.release(batch, error: error)

        if error == nil, compaction == nil, compactionDue { startCompaction() }

        // After a failure nobody writes again: what queued meanwhile fails too.
        commit.handOn(failure: failure)
        if let error { throw error }
    }

    // MARK: Compaction

    /// Many more operations than live keys, or carried run finishes filling the file.
    private var compactionDue: Bool {
        if records > compactionMinimum, records > compactionFloor, records > Self.compactionRatio * count { return true }
        return records > compactionFloor && carriedBytes > carriedCompactionMinimum && carriedBytes * 2 > log.size
    }

    /// A compaction in progress: the snapshot covers the file up to `offset`; what is
    /// appended after it is copied over at the switch.
    private struct Compaction {
        let offset: Int
        var recordsAfter = 0
        var carriedBytesAfter = 0
        var task: Task<Void, Never>?
    }

    /// Starts a compaction without holding up writers: on a thread of its own, one `set`
    /// line per live key of a snapshot of the cache is written to `memory.jsonl.compact` and
    /// fsync'd while batches keep going to the old file. Then, holding the lead only for
    /// that, the lines appended since the snapshot are copied over, the file is fsync'd,
    /// renamed over the old one and the directory fsync'd. Called by the leader.
    private func startCompaction() {
        let snapshot = maps
        let offset = log.size
        var job = Compaction(offset: offset)
        let count = snapshot.reduce(0) { $0 + $1.count }
        let tmp = log.compactionPath
        let logger = self.logger
        // Isolated to the actor, like its caller; only its waits let writers in.
        job.task = Task {
            // The snapshot keeps no carried finish: the run store must have them durably first.
            if let sink = self.sink {
                do {
                    try await sink.syncCarried()
                } catch {
                    logger.error("memory: compaction put off: the run store could not sync", metadata: ["error": "\(error)"])
                    self.compactionFailed()
                    return
                }
            }
            let written: Int
            var copied = offset
            do {
                let thread = IOThread(name: "flowd-memory-compaction")
                written = try await thread.run { () throws(StoreError) -> Int in
                    try JSONLMemoryStore.writeSnapshot(snapshot, to: tmp)
                }
                // Catch up with what the old file got meanwhile, so that the switch copies little.
                let oldFile = self.log.file
                while self.log.size - copied > 1 << 20 {
                    let (from, to) = (copied, self.log.size)
                    try await thread.run { () throws(StoreError) in
                        try JSONLMemoryStore.copy(oldFile, from: from, to: to, into: tmp, sync: true)
                    }
                    copied = to
                }
            } catch {
                logger.error("memory: compaction failed; continuing with the old file", metadata: ["error": "\(error)"])
                _ = try? FileIO.unlink(tmp)
                self.compactionFailed()
                return
            }
            await self.finishCompaction(snapshotSize: written, snapshotRecords: count, copied: copied)
        }
        compaction = job
    }

    /// Writes one `set` line per key of `snapshot` to a new file at `path`, fsync'd; its size.
    private static func writeSnapshot(_ snapshot: [ShardedMap<JSONValue>], to path: String) throws(StoreError) -> Int {
        try AppendLog.writeCompaction(to: path) { (out: inout CompactionWriter) throws(StoreError) in
            for scope in MemoryScope.allCases {
                for (key, value) in snapshot[scope.index] {
                    MemoryLog.appendLine([.set(scope, key: key, value: value)], to: &out.buffer)
                    try out.spill()
                }
            }
        }.size
    }

    /// Returns once no compaction is in progress (for tests).
    func waitForCompaction() async {
        while let task = compaction?.task { await task.value }
    }

    /// Appends the bytes `from..<to` of `file` to the file at `tmp`, then fsyncs it when `sync`
    /// (a failed fsync is left to the switch's own, which is checked).
    private static func copy(_ file: SharedFile, from: Int, to: Int, into tmp: String, sync: Bool) throws(StoreError) {
        let out = try FileIO.open(tmp, O_WRONLY | O_APPEND)
        defer { FileIO.close(out) }
        defer { if sync { try? FileIO.fsync(out, path: tmp) } }
        var offset = from
        while offset < to {
            let chunk = try FileIO.pread(file.fd, count: min(4 << 20, to - offset), at: offset, path: file.path)
            if chunk.isEmpty { throw StoreError(.io, "memory.jsonl is shorter than written", path: file.path) }
            try FileIO.writeAll(out, chunk, path: tmp)
            offset += chunk.count
        }
    }

    private func compactionFailed() {
        compactionFloor = records + compactionMinimum
        compaction = nil
    }

    /// Takes the lead, copies what was appended since the snapshot, switches files, then
    /// writes the batch that waited meanwhile (to the new file) and hands the lead on.
    private func finishCompaction(snapshotSize: Int, snapshotRecords: Int, copied: Int) async {
        let tmp = log.compactionPath
        // The lead: batches in flight finish first; new writers wait in the pending batch.
        do {
            while !(try await awaitTurn()) {}
        } catch {
            // The store failed meanwhile (it refuses writes until reopened): drop the new file.
            _ = try? FileIO.unlink(tmp)
            compaction = nil
            return
        }
        guard let job = compaction, failure == nil, !isClosed else {
            _ = try? FileIO.unlink(tmp)
            compaction = nil
            try? await lead()
            return
        }
        let before = records
        let oldFile = log.file
        let oldSize = log.size
        do throws(StoreError) {
            let switched = try await log.switchToCompacted(size: snapshotSize + (oldSize - job.offset)) { () throws(StoreError) in
                try JSONLMemoryStore.copy(oldFile, from: copied, to: oldSize, into: tmp, sync: false)
                let out = try FileIO.open(tmp, O_WRONLY | O_APPEND)
                defer { FileIO.close(out) }
                try FileIO.fsync(out, path: tmp)
            }
            if switched {
                records = snapshotRecords + job.recordsAfter
                carriedBytes = job.carriedBytesAfter
                compactionFloor = 0
                logger.info(
                    "memory: compacted",
                    metadata: ["file": "\(path)", "records_before": "\(before)", "records_after": "\(records)"])
            }
        } catch {
            // The old file is untouched and still open: keep appending to it; retry later.
            compactionFloor = records + compactionMinimum
            logger.error("memory: compaction failed; continuing with the old file", metadata: ["error": "\(error)"])
        }
        compaction = nil
        // The batch that waited for the switch goes to the new file; then the lead moves on.
        try? await lead()
    }
}
