import FlowdJSON
import Foundation
import PostgresNIO
import Stores

/// Run records in `flowd_runs`, their events in `flowd_run_events` and their journals in
/// `flowd_run_steps`, shared by every replica.
///
/// A record's row keeps the `RunRecord` JSON (`record`, its stored form: input and
/// idempotency key included) beside the columns the replicas coordinate on: `seq` (arrival
/// order), `owner` (the replica running it), `finished_at` (null while queued or running),
/// `cancel_requested` and `idempotency_key` (unique among the rows that have one). Every
/// write is committed when it returns, `create(durable: false)` too. `finish` writes the
/// final record, every event and the journal in one transaction and announces it
/// (`NOTIFY flowd, 's:<story>'` and `'e:<run>'`); a run that was already finished (by a lease
/// expiry) or taken over by another replica is not overwritten, and one whose cancel was
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

    /// `arrive`, for the run store's contract: a taken idempotency key is an error.
    public func create(_ record: RunRecord, durable: Bool) async throws(StoreError) {
        if case .duplicate(let other) = try await arrive(record, durable: durable) {
            throw StoreError(.invalidRecord, "run \(record.runID): its idempotency key is run \(other)'s")
        }
    }

    /// A run's arrival: its row, in its story's order, with its idempotency key. Not `durable`,
    /// its commit does not wait for the WAL to reach the disk (`synchronous_commit` off for
    /// that transaction alone): nothing answered depends on it surviving a database crash,
    /// which would also end the run.
    ///
    /// One statement; a key another row has (the unique index decides, across replicas:
    /// a second insert of a key waits for the first's commit) inserts nothing, and a second
    /// look finds that row's id (`.duplicate`).
    public func arrive(_ record: RunRecord, durable: Bool) async throws(StoreError) -> Arrival {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id") }
        let (database, owner) = (self.database, self.owner)
        let synchronous = durable ? "on" : "off"
        let key = record.idempotency?.key
        return try await database.uncancellable { () async throws(StoreError) -> Arrival in
            // A key's row pruned between the insert and the look (its retention ended): the
            // key is free again, so try once more.
            for _ in 0..<3 {
                // The story's advisory lock (held to the commit) makes `seq` order commit order
                // within a story: a run never sees a later one committed before an earlier one,
                // which would let both think they are first.
                let inserted = try await database.rows("""
                    WITH story AS (SELECT pg_advisory_xact_lock(\(PostgresRunStore.storyLockClass), hashtext(\(record.storyID)))),
                    commit_mode AS (SELECT set_config('synchronous_commit', \(synchronous), true))
                    INSERT INTO flowd_runs (run_id, story_id, flow, status, owner, created_at, record, idempotency_key)
                    SELECT \(record.runID), \(record.storyID), \(record.flow), \(record.status.rawValue), \(owner),
                           \(record.createdAt), \(record.storedJSON.jsonString), \(key) FROM story, commit_mode
                    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                    RETURNING 1
                    """, "run create") { _ in true }
                guard inserted.isEmpty, let key else { return .arrived }
                if let other = try await runID(forKey: key) { return .duplicate(runID: other) }
            }
            throw StoreError(.io, "run create: idempotency key of run \(record.runID) neither stored nor found")
        }
    }

    /// The run whose idempotency key is `key`, while its row is kept.
    public func runID(forKey key: String) async throws(StoreError) -> String? {
        try await database.rows("SELECT run_id FROM flowd_runs WHERE idempotency_key = \(key)", "run by key") { row in
            try row.decode(String.self)
        }.first
    }

    /// Appends to the journal of a run of this replica, with its events, in one statement
    /// committed synchronously (its WAL flush also makes an asynchronous arrival before it
    /// durable). A missing row (an arrival lost with a database crash) is inserted from
    /// `record`. Steps and events already stored are left as they are. A row finished, or
    /// taken over by another replica (this one's lease expired), gets nothing: `.failed`.
    public func journal(_ record: RunRecord, steps: [RunStep], first: Int, events: [RunEvent]) async throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id") }
        guard first >= 1 else { throw StoreError(.invalidRecord, "journal of run \(record.runID): steps are numbered from 1") }
        let (database, owner) = (self.database, self.owner)
        let (stepNumbers, stepBodies) = PostgresRunStore.stepColumns(steps, first: first)
        let (eventIDs, eventBodies) = PostgresRunStore.eventColumns(events)
        let rows = try await database.uncancellable { () async throws(StoreError) -> [Bool] in
            // The row is locked (FOR SHARE) only if it is this replica's and unfinished: a lease
            // reaper's FOR UPDATE waits for this commit, or this waits for it and sees its verdict.
            // The story's lock is taken only to insert a missing row (`seq` order, as at arrival).
            try await database.rows("""
                WITH commit_mode AS (SELECT set_config('synchronous_commit', 'on', true)),
                story AS (
                    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM flowd_runs WHERE run_id = \(record.runID))
                        THEN pg_advisory_xact_lock(\(PostgresRunStore.storyLockClass), hashtext(\(record.storyID))) END),
                created AS (
                    INSERT INTO flowd_runs (run_id, story_id, flow, status, owner, created_at, record, idempotency_key)
                    SELECT \(record.runID), \(record.storyID), \(record.flow), \(record.status.rawValue), \(owner),
                           \(record.createdAt), \(record.storedJSON.jsonString), \(record.idempotency?.key)
                    FROM story, commit_mode
                    WHERE NOT EXISTS (SELECT 1 FROM flowd_runs WHERE run_id = \(record.runID))
                    ON CONFLICT DO NOTHING
                    RETURNING run_id),
                existing AS (
                    SELECT run_id FROM flowd_runs
                    WHERE run_id = \(record.runID) AND finished_at IS NULL AND owner = \(owner) FOR SHARE),
                run AS (SELECT run_id FROM existing UNION ALL SELECT run_id FROM created),
                steps AS (
                    INSERT INTO flowd_run_steps (run_id, step_no, body)
                    SELECT run.run_id, s.n, s.body FROM run, unnest(\(stepNumbers)::integer[], \(stepBodies)::text[]) AS s(n, body)
                    ON CONFLICT (run_id, step_no) DO NOTHING),
                events AS (
                    INSERT INTO flowd_run_events (run_id, event_id, body)
                    SELECT run.run_id, e.id, e.body FROM run, unnest(\(eventIDs)::integer[], \(eventBodies)::text[]) AS e(id, body)
                    ON CONFLICT (run_id, event_id) DO NOTHING)
                SELECT EXISTS (SELECT 1 FROM run),
                       (SELECT count(*) FROM (SELECT pg_notify(\(PostgresDatabase.channel), 'e:' || run_id) FROM run) AS announced)
                FROM commit_mode
                """, "run journal") { row in try row.decode((Bool, Int64).self).0 }
        }
        if rows.first == true { return }
        // Nothing was written: say why (a rare path, so a second look is fine).
        let state = try await database.rows(
            "SELECT owner, finished_at IS NOT NULL FROM flowd_runs WHERE run_id = \(record.runID)", "run journal") { row in
                try row.decode((String, Bool).self)
            }
        switch state.first {
        case (_, true)?: throw StoreError(.failed, "run \(record.runID) was finished by another replica (lease expired)")
        case (let other, _)?: throw StoreError(.failed, "run \(record.runID) was taken over by replica \(other) (lease expired)")
        case nil: throw StoreError(.invalidRecord, "run \(record.runID) has no record, and its idempotency key is another run's")
        }
    }

    /// A run's journal in step order; nil when the run is unknown.
    public func steps(of runID: String) async throws(StoreError) -> [RunStep]? {
        guard Identifier.isValidID(runID) else { return nil }
        let rows = try await database.rows("""
            SELECT s.body FROM flowd_runs r LEFT JOIN flowd_run_steps s ON s.run_id = r.run_id
            WHERE r.run_id = \(runID) ORDER BY s.step_no
            """, "run steps") { row in try row.decode(String?.self) }
        guard !rows.isEmpty else { return nil }
        return try rows.compactMap { $0 }.map { body throws(StoreError) in try PostgresRunStore.parseStep(body, runID) }
    }

    public func finish(_ record: RunRecord, events: [RunEvent]) async throws(StoreError) {
        try await finish(record, events: events, steps: [])
    }

    /// `finish`, keeping `steps` (the run's whole journal, numbered from 1) for a retry.
    public func finish(_ record: RunRecord, events: [RunEvent], steps: [RunStep]) async throws(StoreError) {
        guard Identifier.isValidID(record.runID) else { throw StoreError(.invalidID, "invalid run id") }
        guard record.status.isFinished, let finishedAt = record.finishedAt else {
            throw StoreError(.invalidRecord, "finish of a run that is not finished")
        }
        let (database, owner) = (self.database, self.owner)
        let logger = database.logger
        let (stepNumbers, stepBodies) = PostgresRunStore.stepColumns(steps, first: 1)
        try await database.uncancellable { () async throws(StoreError) in try await database.transaction("run finish") { connection in
            // Only a row of this replica: one another replica took over (this one's lease
            // expired) is that replica's to end.
            let updated = try await connection.query("""
                INSERT INTO flowd_runs (run_id, story_id, flow, status, owner, created_at, finished_at, record, idempotency_key)
                VALUES (\(record.runID), \(record.storyID), \(record.flow), \(record.status.rawValue), \(owner),
                        \(record.createdAt), \(finishedAt), \(record.storedJSON.jsonString), \(record.idempotency?.key))
                ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
                    record = excluded.record
                WHERE flowd_runs.finished_at IS NULL AND flowd_runs.owner = excluded.owner
                  AND (NOT flowd_runs.cancel_requested OR excluded.status IN ('cancelled', 'succeeded'))
                RETURNING 1
                """, logger: logger)
            var stored = false
            for try await _ in updated { stored = true }
            if !stored {
                let rows = try await connection.query(
                    "SELECT finished_at IS NULL AND owner = \(owner) FROM flowd_runs WHERE run_id = \(record.runID)", logger: logger)
                var unfinished = false
                for try await row in rows.decode(Bool.self) { unfinished = row }
                // Unfinished and ours: a cancel was accepted first, so the run is to end cancelled.
                if unfinished { throw StoreError(.cancelled, "run \(record.runID) was cancelled before its end") }
                // Finished meanwhile, or taken over, by another replica (our lease expired): that stands.
                return
            }
            try await PostgresRunStore.insertEvents(events.map { (record.runID, $0) }, on: connection, logger: logger)
            if !steps.isEmpty {
                try await connection.query("""
                    INSERT INTO flowd_run_steps (run_id, step_no, body)
                    SELECT \(record.runID), s.n, s.body FROM unnest(\(stepNumbers)::integer[], \(stepBodies)::text[]) AS s(n, body)
                    ON CONFLICT (run_id, step_no) DO NOTHING
                    """, logger: logger)
            }
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

    /// Steps as the columns `step_no` (`first`, `first` + 1, …) and `body`.
    static func stepColumns(_ steps: [RunStep], first: Int) -> (numbers: [Int32], bodies: [String]) {
        let bodies = steps.map { step -> String in
            var bytes: [UInt8] = []
            step.appendJSON(to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        return (steps.indices.map { Int32(clamping: first + $0) }, bodies)
    }

    public func record(_ runID: String) async throws(StoreError) -> RunRecord? {
        guard Identifier.isValidID(runID) else { return nil }
        let texts = try await database.rows("SELECT record FROM flowd_runs WHERE run_id = \(runID)", "run record") { row in
            try row.decode(String.self)
        }
        guard let text = texts.first else { return nil }
        return try PostgresRunStore.parseRecord(text, runID)
    }

    /// A page of runs, newest first: a keyset query on (`created_at`, `run_id` in byte order),
    /// the order of `RunCursor`, on the indexes of migration 3. A cursor's time is bound as
    /// the `Date` a record's `createdAt` is, so it equals its run's stored `created_at` exactly.
    public func list(_ query: RunQuery) async throws(StoreError) -> RunPage {
        var binds = PostgresBindings()
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        var conditions: [String] = []
        if let story = query.storyID { conditions.append("story_id = \(bind(story))") }
        if let flow = query.flow { conditions.append("flow = \(bind(flow))") }
        if let status = query.status { conditions.append("status = \(bind(status.rawValue))") }
        if let before = query.before {
            conditions.append(#"(created_at, run_id COLLATE "C") < (\#(bind(before.createdAt)), \#(bind(before.runID)) COLLATE "C")"#)
        }
        let limit = min(max(query.limit, 1), 1000)
        let sql = "SELECT record FROM flowd_runs" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + #" ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT \#(limit + 1)"#
        let texts = try await database.rows(PostgresQuery(unsafeSQL: sql, binds: binds), "run list") { row in
            try row.decode(String.self)
        }
        var records: [RunRecord] = []
        records.reserveCapacity(min(texts.count, limit))
        for text in texts.prefix(limit) { records.append(try PostgresRunStore.parseRecord(text, "listed")) }
        return RunPage(records: records, more: texts.count > limit)
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
            events.append(try PostgresRunStore.parseEvent(body, runID))
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

    static func parseStep(_ text: String, _ runID: String) throws(StoreError) -> RunStep {
        guard let json = try? JSONValue.parse(text), let step = RunStep(json: json) else {
            throw StoreError(.corrupt, "journal step of run \(runID) is not a valid step")
        }
        return step
    }

    static func parseEvent(_ text: String, _ runID: String) throws(StoreError) -> RunEvent {
        guard let json = try? JSONValue.parse(text), let event = RunEvent(json: json) else {
            throw StoreError(.corrupt, "event of run \(runID) is not a valid event")
        }
        return event
    }

    static func parseRecord(_ text: String, _ runID: String) throws(StoreError) -> RunRecord {
        guard let json = try? JSONValue.parse(text), let record = RunRecord(json: json) else {
            throw StoreError(.corrupt, "record of run \(runID) is not a valid record")
        }
        return record
    }
}
