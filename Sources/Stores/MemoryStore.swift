import FlowdJSON

/// Where agents' memory lives: key → JSON value, per scope.
///
/// Every write (`set`, `delete`, `commit`) is durable when it returns and visible to
/// every later read; a transaction is all-or-nothing, also across a crash. Keys must be
/// valid memory keys (`Identifier.isValidMemoryKey`): a write with an invalid key throws
/// `.invalidKey` and writes nothing; a read of one finds nothing.
public protocol MemoryStore: Sendable {
    func get(_ scope: MemoryScope, _ key: String) async throws(StoreError) -> JSONValue?
    /// The values of those `keys` that exist, read at one instant.
    func getMany(_ scope: MemoryScope, _ keys: [String]) async throws(StoreError) -> [String: JSONValue]
    /// Durable before it returns.
    func set(_ scope: MemoryScope, _ key: String, _ value: JSONValue) async throws(StoreError)
    /// Durable before it returns; false if the key was absent (nothing is written then).
    func delete(_ scope: MemoryScope, _ key: String) async throws(StoreError) -> Bool
    /// Entries whose key starts with `prefix`, sorted by key.
    func list(_ scope: MemoryScope, prefix: String) async throws(StoreError) -> [(key: String, value: JSONValue)]
    /// All-or-nothing, durable before it returns. An empty transaction does nothing.
    func commit(_ transaction: MemoryTransaction) async throws(StoreError)
    /// Returns once every write accepted so far is on disk (used at shutdown).
    func flush() async throws(StoreError)
}
