import NIOCore
import PostgresNIO
import Stores

/// Documents in the table `flowd_documents (id, body, updated_at)`, shared by every replica.
///
/// A `put` is one `INSERT … ON CONFLICT` statement: readers see the old or the new body,
/// never a mix, and it is committed (flushed on the server) when it returns.
public struct PostgresDocumentStore: DocumentStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    public func put(_ id: String, _ bytes: [UInt8]) async throws(StoreError) -> Bool {
        guard Identifier.isValidID(id) else { throw StoreError(.invalidID, "invalid document id") }
        let created = try await database.rows("""
            INSERT INTO flowd_documents (id, body, updated_at) VALUES (\(id), \(ByteBuffer(bytes: bytes)), now())
            ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at
            RETURNING (xmax = 0)
            """, "document put") { row in try row.decode(Bool.self) }
        return created.first ?? false
    }

    public func get(_ id: String) async throws(StoreError) -> [UInt8]? {
        guard Identifier.isValidID(id) else { return nil }
        let bodies = try await database.rows("SELECT body FROM flowd_documents WHERE id = \(id)", "document get") { row in
            Array(try row.decode(ByteBuffer.self).readableBytesView)
        }
        return bodies.first
    }

    public func delete(_ id: String) async throws(StoreError) -> Bool {
        guard Identifier.isValidID(id) else { return false }
        let deleted = try await database.rows("DELETE FROM flowd_documents WHERE id = \(id) RETURNING 1", "document delete") { _ in true }
        return !deleted.isEmpty
    }

    public func list() async throws(StoreError) -> [(id: String, bytes: Int)] {
        let rows = try await database.rows("SELECT id, octet_length(body) FROM flowd_documents ORDER BY id", "document list") { row in
            try row.decode((String, Int32).self)
        }
        return rows.map { (id: $0.0, bytes: Int($0.1)) }
    }

    public func exists(_ id: String) async throws(StoreError) -> Bool {
        guard Identifier.isValidID(id) else { return false }
        return !(try await database.rows("SELECT 1 FROM flowd_documents WHERE id = \(id)", "document exists") { _ in true }).isEmpty
    }

    /// One query for all of them.
    public func texts(_ ids: [String]) async throws(StoreError) -> [String: String] {
        let ids = Array(Set(ids.filter(Identifier.isValidID)))
        guard !ids.isEmpty else { return [:] }
        let rows = try await database.rows("SELECT id, body FROM flowd_documents WHERE id = ANY(\(ids))", "document get") { row in
            let (id, body) = try row.decode((String, ByteBuffer).self)
            return (id, String(decoding: body.readableBytesView, as: UTF8.self))
        }
        return Dictionary(rows, uniquingKeysWith: { first, _ in first })
    }
}
