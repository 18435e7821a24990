import Foundation
import PostgresNIO
import Stores

/// Run records in `flowd_runs` and their events in `flowd_run_events`, shared by every replica.
///
/// A record's row keeps the `RunRecord` JSON (`record`) beside the columns the replicas
/// coordinate on: `seq` (arrival order), `owner` (the replica running it), `finished_at`
/// (null while queued or running) and `cancel_requested`. Every write is committed when it
/// returns, `create(durable: false)` too. `finish` writes the final record and every event
/// in one transaction and announces it (`NOTIFY flowd, 's:<story>'` and `'e:<run>'`); a run
/// that was already finished (by a lease expiry) is not overwritten, and one whose cancel was
/// requested meanwhile refuses any end but `cancelled` (`.cancelled`). A run's success is
/// stored by its memory commit (`PostgresMemoryStore.commit` with its finish).
public struct PostgresRunStore: RunStore {
    let database: PostgresDatabase
    /// The replica whose runs these are (`flowd_runs.owner`).
    public let owner: String

    /// First key of the stories' advisory locks (the second is the story id's hash).
    static let storyLockClass: Int32 = 0x666C6F77

    public init(database: PostgresDatabase, owner: String) {
        self.database = database
        self.owner = owner
    }

    /// A run's arrival: its row, in its story's order. Not `durable`, its commit does not wait
    /// for the WAL to reach the disk (`synchronous_commit` off for that transaction alone):
    /// nothing answered depends on it surviving a database crash, which would also end the run.
    public func create(_ record: RunRecord, durable: Bool) async throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id") }
        let (database, owner) = (self.database, self.owner)
        let synchronous = durable ? "on" : "off"
        try await database.uncancellable { () async throws(StoreError) in
            // The story's advisory lock (held to the commit) makes `seq` order commit order
            // within a story: a run never sees a later one committed before an earlier one,
            // which would let both think they are first.
            try await database.query("""
                WITH story AS (SELECT pg_advisory_xact_lock(\(PostgresRunStore.storyLockClass), hashtext(\(record.storyID)))),
                commit_mode AS (SELECT set_config('synchronous_commit', \(synchronous), true))
                INSERT INTO flowd_runs (run_id, story_id, flow, status, owner, created_at, record)
                SELECT \(record.runID), \(record.storyID), \(record.flow), \(record.status.rawValue), \(owner),
                       \(record.createdAt), \(record.json.jsonString) FROM story, commit_mode
                """, "run create")
        }
    }

    public func finish(_ record: RunRecord, events: [RunEvent]) async throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id") }
        guard record.status.isFinished, let finishedAt = record.finishedAt else {
            throw StoreError(.invalidRecord, "finish of a run that is not finished")
        }
        let (database, owner) = (self.database, self.owner)
        let logger = database.logger
        try await database.uncancellable { () async throws(StoreError) in try await database.transaction("run finish") { connection in
            let updated = try await connection.query("""
                INSERT INTO flowd_runs (run_id, story_id, flow, status, owner, created_at, finished_at, record)
                VALUES (\(record.runID), \(record.storyID), \(record.flow), \(record.status.rawValue), \(owner),
                        \(record.createdAt), \(finishedAt), \(record.json.jsonString))
                ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
                    record = excluded.record
                WHERE flowd_runs.finished_at IS NULL
                  AND (NOT flowd_runs.cancel_requested OR excluded.status IN ('cancelled', 'succeeded'))
                RETURNING 1
                """, logger: logger)
            var stored = false
            for try await _ in updated { stored = true }
            if !stored {
                let rows = try await connection.query(
                    "SELECT finished_at IS NULL FROM flowd_runs WHERE run_id = \(record.runID)", logger: logger)
                var unfinished = false
                for try await row in rows.decode(Bool.self) { unfinished = row }
                // Unfinished: a cancel was accepted first, so the run is to end cancelled.
                if unfinished { throw StoreError(.cancelled, "run \(record.runID) was cancelled before its end") }
                // Finished meanwhile by another replica (our lease expired): that verdict stands.
                return
            }
            try await PostgresRunStore.insertEvents(events.map { (record.runID, $0) }, on: connection, logger: logger)
            try await connection.query(
                "SELECT pg_notify(\(PostgresDatabase.channel), 's:' || \(record.storyID)), pg_notify(\(PostgresDatabase.channel), 'e:' || \(record.runID))",
                logger: logger)
        } }
    }

    /// Events of several runs, as one statement; an event already stored is left as it is.
    static func insertEvents(_ events: [(runID: String, event: RunEvent)], on connection: PostgresConnection,
                             logger: Logger) async throws {
        guard !events.isEmpty else { return }
        let runIDs = events.map(\.runID)
        let (ids, bodies) = eventColumns(events.map(\.event))
        try await connection.query("""
            INSERT INTO flowd_run_events (run_id, event_id, body)
            SELECT * FROM unnest(\(runIDs)::text[], \(ids)::integer[], \(bodies)::text[])
            ON CONFLICT (run_id, event_id) DO NOTHING
            """, logger: logger)
    }

    /// Events as the columns `event_id` and `body`.
    static func eventColumns(_ events: [RunEvent]) -> (ids: [Int32], bodies: [String]) {
        let bodies = events.map { event -> String in
            var bytes: [UInt8] = []
            event.appendJSON(to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        return (events.map { Int32($0.id) }, bodies)
    }

    public func record(_ runID: String) async throws(StoreError) -> RunRecord? {
        guard Identifier.isValidID(runID) else { return nil }
        let texts = try await database.rows("SELECT record FROM flowd_runs WHERE run_id = \(runID)", "run record") { row in
            try row.decode(String.self)
        }
        guard let text = texts.first else { return nil }
        return try PostgresRunStore.parseRecord(text, runID)
    }

    public func events(_ runID: String, after: Int) async throws(StoreError) -> [RunEvent]? {
        guard let (events, finished) = try await eventsSoFar(runID, after: after), finished else { return nil }
        return events
    }

    /// The events stored so far after `after` (a live run's as its owner writes them), and
    /// whether the run has finished; nil for an unknown run.
    public func eventsSoFar(_ runID: String, after: Int) async throws(StoreError) -> (events: [RunEvent], finished: Bool)? {
        guard Identifier.isValidID(runID) else { return nil }
        // One statement, one snapshot: the finish and its events are seen together or not at all.
        let rows = try await database.rows("""
            SELECT r.finished_at IS NOT NULL, e.body FROM flowd_runs r
            LEFT JOIN flowd_run_events e ON e.run_id = r.run_id AND e.event_id > \(Int32(clamping: after))
            WHERE r.run_id = \(runID) ORDER BY e.event_id
            """, "run events") { row in try row.decode((Bool, String?).self) }
        guard let first = rows.first else { return nil }
        var events: [RunEvent] = []
        for (_, body) in rows {
            guard let body else { continue }
            guard let json = try? JSONValue.parse(body), let event = RunEvent(json: json) else {
                throw StoreError(.corrupt, "event of run \(runID) is not a valid event")
            }
            events.append(event)
        }
        return (events, first.0)
    }

    public func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int {
        let rows = try await database.rows(
            "WITH gone AS (DELETE FROM flowd_runs WHERE finished_at < \(cutoff) RETURNING 1) SELECT count(*) FROM gone",
            "run prune", deadline: .seconds(600)) { row in try row.decode(Int64.self) }
        return Int(rows.first ?? 0)
    }

    /// Every write is committed when it returns: nothing to wait for.
    public func flush() async throws(StoreError) {}

    static func parseRecord(_ text: String, _ runID: String) throws(StoreError) -> RunRecord {
        guard let json = try? JSONValue.parse(text), let record = RunRecord(json: json) else {
            throw StoreError(.corrupt, "record of run \(runID) is not a valid record")
        }
        return record
    }
}
