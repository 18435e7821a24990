import Foundation
import Glibc

/// Documents as files `<directory>/<id>.md`; files placed there by hand count too.
///
/// Ids are validated before any file-system call (see `DocumentStore`). `put` writes a
/// temporary file in the same directory, fsyncs it, renames it over `<id>.md` and fsyncs
/// the directory; `delete` fsyncs the directory after the unlink. Those run on a dedicated
/// thread, and reads on another, so that a caller on an event loop never blocks on the
/// disk (and reads never wait for a write's fsync). `list` ignores every name that is not
/// `<valid id>.md` (temporary files start with `.`) and anything that is not a regular file.
public struct FileDocumentStore: DocumentStore {
    public let directory: URL
    private let path: String
    private let io: IOThread
    private let reader: IOThread

    /// Opens the store, creating the directory (and its parents) if missing.
    public init(directory: URL) throws(StoreError) {
        self.directory = directory
        self.path = directory.path
        self.io = IOThread(name: "flowd-docs")
        self.reader = IOThread(name: "flowd-docs-read")
        try FileIO.makeDirectories(path)
    }

    private func filePath(_ id: String) -> String {
        path + "/" + id + ".md"
    }

    public func put(_ id: String, _ bytes: [UInt8]) async throws(StoreError) -> Bool {
        guard Identifier.isValidID(id) else { throw StoreError(.invalidID, "invalid document id \"\(id)\"") }
        let dir = path
        let target = filePath(id)
        let tmp = dir + "/." + id + ".md." + String(UInt64.random(in: 0...UInt64.max), radix: 16) + ".tmp"
        return try await io.run { () throws(StoreError) -> Bool in
            let fd = try FileIO.open(tmp, O_WRONLY | O_CREAT | O_EXCL)
            do throws(StoreError) {
                try FileIO.writeAll(fd, bytes, path: tmp)
                try FileIO.fsync(fd, path: tmp)
            } catch {
                FileIO.close(fd)
                _ = try? FileIO.unlink(tmp)
                throw error
            }
            // Closed exactly once: a second close could hit a descriptor reused meanwhile.
            FileIO.close(fd)
            do throws(StoreError) {
                let existed = try FileIO.statIfExists(target) != nil
                try FileIO.rename(tmp, target)
                try FileIO.fsyncDirectory(dir)
                return !existed
            } catch {
                _ = try? FileIO.unlink(tmp)
                throw error
            }
        }
    }

    public func get(_ id: String) async throws(StoreError) -> [UInt8]? {
        guard Identifier.isValidID(id) else { return nil }
        let file = filePath(id)
        return try await reader.run { () throws(StoreError) in try FileIO.readRegularFile(file) }
    }

    public func delete(_ id: String) async throws(StoreError) -> Bool {
        guard Identifier.isValidID(id) else { return false }
        let dir = path
        let target = filePath(id)
        return try await io.run { () throws(StoreError) -> Bool in
            guard let st = try FileIO.statIfExists(target), FileIO.isRegular(st) else { return false }
            guard try FileIO.unlink(target) else { return false }
            try FileIO.fsyncDirectory(dir)
            return true
        }
    }

    public func exists(_ id: String) async throws(StoreError) -> Bool {
        guard Identifier.isValidID(id) else { return false }
        let file = filePath(id)
        return try await reader.run { () throws(StoreError) in
            guard let st = try FileIO.statIfExists(file) else { return false }
            return FileIO.isRegular(st)
        }
    }

    public func list() async throws(StoreError) -> [(id: String, bytes: Int)] {
        let path = self.path
        let found = try await reader.run { () throws(StoreError) in try Self.scan(path) }
        return found.map { (id: $0.id, bytes: $0.bytes) }
    }

    private struct Listed: Sendable {
        let id: String
        let bytes: Int
    }

    private static func scan(_ path: String) throws(StoreError) -> [Listed] {
        guard let dir = opendir(path) else { throw .system("opendir", path: path) }
        defer { closedir(dir) }
        var found: [Listed] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw .system("readdir", path: path) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".md") else { continue }
            let id = String(name.dropLast(3))
            guard Identifier.isValidID(id), let st = try FileIO.statIfExists(path + "/" + name), FileIO.isRegular(st) else { continue }
            found.append(Listed(id: id, bytes: Int(st.st_size)))
        }
        found.sort { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
        return found
    }
}
