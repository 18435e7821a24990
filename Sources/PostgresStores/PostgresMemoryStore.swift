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
        // A commit that started goes to its end: a cancel does not leave its outcome unknown.
        let (database, operations) = (self.database, transaction.operations)
        let (single, scopeList, keyList, valueList) = (distinctSets, scopes, keys, values)
        try await database.uncancellable { () async throws(StoreError) in
            try await PostgresMemoryStore.write(database, operations, distinctSets: single,
                                                scopes: scopeList, keys: keyList, values: valueList)
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
