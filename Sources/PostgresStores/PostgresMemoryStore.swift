import FlowdJSON
import PostgresNIO
import Stores

/// Memory in the table `flowd_memory (scope, key, value)`, shared by every replica.
///
/// Values are kept as the JSON text flowd writes (exact integers, key order kept). A write
/// returns once its statement or transaction committed (`synchronous_commit` on: flushed
/// on the server). A transaction of distinct `set`s is one `INSERT … ON CONFLICT`
/// statement (one round trip, atomic by itself); any other one is a BEGIN … COMMIT.
public struct PostgresMemoryStore: MemoryStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    public func get(_ scope: MemoryScope, _ key: String) async throws(StoreError) -> JSONValue? {
        guard Identifier.isValidMemoryKey(key) else { return nil }
        let values = try await database.rows(
            "SELECT value FROM flowd_memory WHERE scope = \(scope.rawValue) AND key = \(key)", "memory get") { row in
                try row.decode(String.self)
            }
        guard let text = values.first else { return nil }
        return try Self.parse(text, key)
    }

    public func getMany(_ scope: MemoryScope, _ keys: [String]) async throws(StoreError) -> [String: JSONValue] {
        let keys = keys.filter(Identifier.isValidMemoryKey)
        guard !keys.isEmpty else { return [:] }
        let rows = try await database.rows(
            "SELECT key, value FROM flowd_memory WHERE scope = \(scope.rawValue) AND key = ANY(\(keys))", "memory get") { row in
                try row.decode((String, String).self)
            }
        var found: [String: JSONValue] = [:]
        for (key, text) in rows { found[key] = try Self.parse(text, key) }
        return found
    }

    public func set(_ scope: MemoryScope, _ key: String, _ value: JSONValue) async throws(StoreError) {
        guard Identifier.isValidMemoryKey(key) else { throw StoreError(.invalidKey, "invalid memory key") }
        try await database.query("""
            INSERT INTO flowd_memory (scope, key, value) VALUES (\(scope.rawValue), \(key), \(value.jsonString))
            ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value
            """, "memory set")
    }

    public func delete(_ scope: MemoryScope, _ key: String) async throws(StoreError) -> Bool {
        guard Identifier.isValidMemoryKey(key) else { return false }
        let deleted = try await database.rows(
            "DELETE FROM flowd_memory WHERE scope = \(scope.rawValue) AND key = \(key) RETURNING 1", "memory delete") { _ in true }
        return !deleted.isEmpty
    }

    public func list(_ scope: MemoryScope, prefix: String) async throws(StoreError) -> [(key: String, value: JSONValue)] {
        let rows = try await database.rows("""
            SELECT key, value FROM flowd_memory WHERE scope = \(scope.rawValue) AND starts_with(key, \(prefix)) ORDER BY key
            """, "memory list") { row in try row.decode((String, String).self) }
        var out: [(key: String, value: JSONValue)] = []
        out.reserveCapacity(rows.count)
        for (key, text) in rows { out.append((key, try Self.parse(text, key))) }
        return out
    }

    public func commit(_ transaction: MemoryTransaction) async throws(StoreError) {
        guard !transaction.isEmpty else { return }
        let (distinctSets, scopes, keys, values) = try Self.columns(transaction)
        // A commit that started goes to its end: a cancel does not leave its outcome unknown.
        let (database, operations) = (self.database, transaction.operations)
        try await database.uncancellable { () async throws(StoreError) in
            try await PostgresMemoryStore.write(database, operations, distinctSets: distinctSets,
                                                scopes: scopes, keys: keys, values: values)
        }
    }

    /// A run's success: `transaction` (which sets each key once) and `finish`, in one statement,
    /// if the run is still `owner`'s.
    func commit(_ transaction: MemoryTransaction, finishing finish: RunFinish, owner: String) async throws(StoreError) {
        let (distinctSets, scopes, keys, values) = try Self.columns(transaction)
        guard distinctSets else { throw StoreError(.invalidRecord, "a run's memory commit sets each key once") }
        let database = self.database
        try await database.uncancellable { () async throws(StoreError) in
            try await PostgresMemoryStore.commitRun(database, finish, owner: owner, scopes: scopes, keys: keys, values: values)
        }
    }

    /// The sets of `transaction` as columns, and whether they are all it does, each key once.
    private static func columns(_ transaction: MemoryTransaction) throws(StoreError)
        -> (distinctSets: Bool, scopes: [String], keys: [String], values: [String]) {
        var scopes: [String] = []
        var keys: [String] = []
        var values: [String] = []
        var distinctSets = true
        var seen = Set<String>()
        for operation in transaction.operations {
            guard Identifier.isValidMemoryKey(operation.key) else { throw StoreError(.invalidKey, "invalid memory key") }
            guard case .set(let scope, let key, let value) = operation, seen.insert("\(scope.rawValue)/\(key)").inserted else {
                distinctSets = false
                continue
            }
            scopes.append(scope.rawValue)
            keys.append(key)
            values.append(value.jsonString)
        }
        return (distinctSets, scopes, keys, values)
    }

    /// A run's success in one statement (one round trip, one commit): lock its row unless it
    /// finished, a cancel was requested or another replica took it over, then its memory, its
    /// final record, its events and steps, and the notifications of its end. The row lock
    /// orders it against `PostgresCluster.requestCancel`: a cancel that came first makes this
    /// write nothing (`.cancelled`); one that comes after waits for it and finds the run
    /// finished. (`NO KEY`: the foreign-key checks of event batches written meanwhile take
    /// `KEY SHARE` on the row, and must not deadlock with it.)
    private static func commitRun(_ database: PostgresDatabase, _ finish: RunFinish, owner: String,
                                  scopes: [String], keys: [String], values: [String]) async throws(StoreError) {
        let record = finish.record
        guard record.status.isFinished, let finishedAt = record.finishedAt else {
            throw StoreError(.invalidRecord, "finish of a run that is not finished")
        }
        let (eventIDs, bodies) = PostgresRunStore.eventColumns(finish.events)
        let (stepNumbers, stepBodies) = PostgresRunStore.stepColumns(finish.steps, first: 1)
        let committed = try await database.rows("""
            WITH run AS (
                SELECT run_id FROM flowd_runs
                WHERE run_id = \(record.runID) AND finished_at IS NULL AND NOT cancel_requested AND owner = \(owner)
                FOR NO KEY UPDATE),
            memory AS (
                INSERT INTO flowd_memory (scope, key, value)
                SELECT m.scope, m.key, m.value FROM unnest(\(scopes)::text[], \(keys)::text[], \(values)::text[]) AS m(scope, key, value)
                WHERE EXISTS (SELECT 1 FROM run)
                ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value),
            finished AS (
                UPDATE flowd_runs SET status = \(record.status.rawValue), finished_at = \(finishedAt), record = \(record.storedJSON.jsonString)
                WHERE run_id = (SELECT run_id FROM run)),
            events AS (
                INSERT INTO flowd_run_events (run_id, event_id, body)
                SELECT run.run_id, e.id, e.body FROM run, unnest(\(eventIDs)::integer[], \(bodies)::text[]) AS e(id, body)
                ON CONFLICT (run_id, event_id) DO NOTHING),
            steps AS (
                INSERT INTO flowd_run_steps (run_id, step_no, body)
                SELECT run.run_id, s.n, s.body FROM run, unnest(\(stepNumbers)::integer[], \(stepBodies)::text[]) AS s(n, body)
                ON CONFLICT (run_id, step_no) DO NOTHING)
            SELECT count(*) FROM (
                SELECT pg_notify(\(PostgresDatabase.channel), 's:' || \(record.storyID)),
                       pg_notify(\(PostgresDatabase.channel), 'e:' || run_id) FROM run) AS announced
            """, "run commit") { row in try row.decode(Int64.self) }
        if committed.first == 1 { return }
        // Nothing was written: say why (a rare path, so a second look is fine).
        let state = try await database.rows(
            "SELECT cancel_requested, finished_at IS NOT NULL, owner FROM flowd_runs WHERE run_id = \(record.runID)", "run commit") { row in
                try row.decode((Bool, Bool, String).self)
            }
        switch state.first {
        case (true, _, _)?: throw StoreError(.cancelled, "run \(record.runID) was cancelled before its commit")
        case (_, true, _)?: throw StoreError(.failed, "run \(record.runID) was finished by another replica (lease expired)")
        case (_, _, let other)? where other != owner:
            throw StoreError(.failed, "run \(record.runID) was taken over by replica \(other) (lease expired)")
        default: throw StoreError(.invalidRecord, "run \(record.runID) has no record to commit to")
        }
    }

    private static func write(_ database: PostgresDatabase, _ operations: [MemoryTransaction.Operation], distinctSets: Bool,
                              scopes: [String], keys: [String], values: [String]) async throws(StoreError) {
        if distinctSets {
            try await database.query("""
                INSERT INTO flowd_memory (scope, key, value)
                SELECT * FROM unnest(\(scopes)::text[], \(keys)::text[], \(values)::text[])
                ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value
                """, "memory commit")
            return
        }
        try await database.transaction("memory commit") { connection in
            for operation in operations {
                switch operation {
                case .set(let scope, let key, let value):
                    try await connection.query("""
                        INSERT INTO flowd_memory (scope, key, value) VALUES (\(scope.rawValue), \(key), \(value.jsonString))
                        ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value
                        """, logger: database.logger)
                case .delete(let scope, let key):
                    try await connection.query(
                        "DELETE FROM flowd_memory WHERE scope = \(scope.rawValue) AND key = \(key)", logger: database.logger)
                }
            }
        }
    }

    /// Every write is committed when it returns: nothing to wait for.
    public func flush() async throws(StoreError) {}

    static func parse(_ text: String, _ key: String) throws(StoreError) -> JSONValue {
        do {
            return try JSONValue.parse(text)
        } catch {
            throw StoreError(.corrupt, "memory value of \(key) is not JSON: \(error)")
        }
    }
}
