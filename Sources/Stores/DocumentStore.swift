/// The documents flows read (`{{docs.<id>}}`, `requires`): id → bytes (Markdown).
///
/// Ids must be valid (`Identifier.isValidID`). An invalid id never reaches the storage:
/// `put` throws `.invalidID`; `get` answers nil, `delete` and `exists` false, `texts`
/// leaves it out. Readers see a document's old or new content, never a mix.
public protocol DocumentStore: Sendable {
    /// Stores the document durably; true when it was created, false when it replaced one.
    func put(_ id: String, _ bytes: [UInt8]) async throws(StoreError) -> Bool
    func get(_ id: String) async throws(StoreError) -> [UInt8]?
    /// Durable before it returns; false if absent.
    func delete(_ id: String) async throws(StoreError) -> Bool
    /// Every document, sorted by id.
    func list() async throws(StoreError) -> [(id: String, bytes: Int)]
    func exists(_ id: String) async throws(StoreError) -> Bool
    /// The documents among `ids` that exist, as UTF-8 text (invalid bytes become U+FFFD).
    func texts(_ ids: [String]) async throws(StoreError) -> [String: String]
}

extension DocumentStore {
    public func texts(_ ids: [String]) async throws(StoreError) -> [String: String] {
        var found: [String: String] = [:]
        for id in ids where found[id] == nil {
            if let bytes = try await get(id) {
                found[id] = String(decoding: bytes, as: UTF8.self)
            }
        }
        return found
    }
}
