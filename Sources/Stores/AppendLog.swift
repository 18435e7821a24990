import Glibc
import Logging

/// The file machinery of a JSONL log, shared by the memory store (`memory.jsonl`) and the run
/// store (`runs.jsonl`), which keep only their own line formats and recovery rules.
///
/// It opens the log (directory created durably, an exclusive `flock` on a lock file, a crashed
/// compaction's leftover removed, the file replayed from its start), appends the group
/// commit's batches (one write and, when asked, one `fdatasync` per batch, on the store's I/O
/// thread) and puts a compacted copy in place of the file (written beside it, fsync'd, renamed
/// over it, directory fsync'd).
///
/// Invariants:
/// - `size` is the size of the file's good lines: every append starts on a clean line, since
///   a failed append cuts the file back (best effort) to the size before it.
/// - After a failed append, or a compaction that failed after its rename, `failure` is set and
///   stays set: what reached the disk is unknown, so the store refuses writes until reopened.
/// - The lock is held from `open` until `close` (or until the log is released).
///
/// Owned by one store actor and used only on it: its async methods run on the caller's actor
/// (`isolation`), so the state needs no lock of its own.
final class AppendLog {
    /// Names the log in warnings and errors (`memory`, `runs`).
    let label: String
    let directory: String
    let path: String
    /// Where a compaction writes the new file before renaming it over `path`.
    let compactionPath: String
    /// The store's thread for blocking file work.
    let io: IOThread
    private let logger: Logger

    /// The open file; readers keep the one they took across a compaction (`SharedFile`).
    private(set) var file: SharedFile
    /// Bytes of good lines in the file.
    private(set) var size: Int
    /// Why the log refuses writes, once an append (or a compaction's switch) failed.
    private(set) var failure: StoreError?
    private var lockFD: Int32?

    /// The names of a log's files in its directory.
    struct Names: Sendable {
        var file: String
        var lock: String
        var compaction: String
        /// What the lock protects, for the `.locked` error (`memory is`, `run records are`).
        var lockedWhat: String
    }

    /// Opens the log `names.file` in `directory` on `io`: creates the directory (durably) and
    /// the file when missing, takes the lock (`.locked` if another process holds it), drops a
    /// crashed compaction's file, then hands the file, at its start, to `replay`, which returns
    /// the size of its good lines (`LogReplay`) and what the store makes of them.
    static func open<Replayed: Sendable>(
        directory: String, names: Names, label: String, logger: Logger, io: IOThread,
        replay: @escaping @Sendable (_ fd: Int32, _ path: String) throws(StoreError) -> (size: Int, Replayed)
    ) async throws(StoreError) -> (AppendLog, Replayed) {
        let path = directory + "/" + names.file
        let opened = try await io.run { () throws(StoreError) -> (SharedFile, Int32, Int, Replayed) in
            try FileIO.makeDirectories(directory)
            let lockFD = try FileIO.lockExclusively(directory, names.lock, what: names.lockedWhat)
            do throws(StoreError) {
                let file = SharedFile(fd: try FileIO.openLog(directory, names.file, compactionName: names.compaction), path: path)
                let (size, replayed) = try replay(file.fd, path)
                return (file, lockFD, size, replayed)
            } catch {
                FileIO.unlock(lockFD)
                throw error
            }
        }
        let log = AppendLog(
            label: label, directory: directory, names: names, logger: logger, io: io,
            file: opened.0, lockFD: opened.1, size: opened.2)
        return (log, opened.3)
    }

    private init(
        label: String, directory: String, names: Names, logger: Logger, io: IOThread, file: SharedFile, lockFD: Int32, size: Int
    ) {
        self.label = label
        self.directory = directory
        self.path = directory + "/" + names.file
        self.compactionPath = directory + "/" + names.compaction
        self.io = io
        self.logger = logger
        self.file = file
        self.lockFD = lockFD
        self.size = size
    }

    deinit {
        if let lockFD { FileIO.unlock(lockFD) }
    }

    // MARK: Appending

    /// Appends `bytes` to `file`, whose good lines end at `size`, and `fdatasync`s them when
    /// `sync`. On failure the file is cut back to `size` (best effort), so that the next append
    /// does not follow half a line. Blocking: for an I/O thread.
    static func append(_ bytes: [UInt8], to file: SharedFile, at size: Int, sync: Bool) throws(StoreError) {
        do throws(StoreError) {
            try FileIO.writeAll(file.fd, bytes, path: file.path)
            if sync { try FileIO.fdatasync(file.fd, path: file.path) }
        } catch {
            try? FileIO.truncate(file.fd, to: size, path: file.path)
            throw error
        }
    }

    /// Takes note of lines written to the file at open, before the log was made (the run
    /// store's adopted and interrupted finishes).
    func grew(by count: Int) {
        size += count
    }

    /// The group commit leader's write: appends a batch (and syncs it when `sync`) on the I/O
    /// thread. A failure sets `failure`, for good, and is thrown.
    func append(_ bytes: [UInt8], sync: Bool = true, isolation: isolated (any Actor)? = #isolation) async throws(StoreError) {
        let (file, size) = (self.file, self.size)
        do throws(StoreError) {
            try await io.run { () throws(StoreError) in try AppendLog.append(bytes, to: file, at: size, sync: sync) }
            self.size += bytes.count
        } catch {
            logger.error("\(label): write failed; refusing further writes", metadata: ["error": "\(error)"])
            failure = StoreError(.failed, "an earlier write failed (\(error)); reopen the store", path: path)
            throw error
        }
    }

    // MARK: Compaction

    /// Writes a new file at `path` through `body`, buffered, then fsyncs and closes it; removes
    /// it when anything fails. Returns its size and what `body` returns. Blocking: for an I/O thread.
    static func writeCompaction<T>(
        to path: String, _ body: (inout CompactionWriter) throws(StoreError) -> T
    ) throws(StoreError) -> (size: Int, T) {
        let out = try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        var writer = CompactionWriter(fd: out, path: path)
        do throws(StoreError) {
            let result = try body(&writer)
            try writer.spill(force: true)
            try FileIO.fsync(out, path: path)
            // Closed exactly once: a second close could hit a descriptor reused meanwhile.
            FileIO.close(out)
            return (writer.size, result)
        } catch {
            FileIO.close(out)
            _ = try? FileIO.unlink(path)
            throw error
        }
    }

    /// Puts the compacted file (`compactionPath`, of `newSize` bytes once `beforeRename` ran)
    /// in place of the log, on the I/O thread: `beforeRename` (the memory store copies the lines
    /// appended since its snapshot, and fsyncs), the rename, the directory's fsync, the reopen.
    ///
    /// Throws when the old file is untouched (the compacted file is removed): the store keeps
    /// appending to it. Returns false when it failed after the rename: `failure` is then set.
    /// On success `file` and `size` are the new file's; readers holding the old one keep it.
    func switchToCompacted(
        size newSize: Int, beforeRename: @escaping @Sendable () throws(StoreError) -> Void = {},
        isolation: isolated (any Actor)? = #isolation
    ) async throws(StoreError) -> Bool {
        enum Outcome: Sendable {
            case switched(SharedFile)
            case failedAfterRename(StoreError)
        }
        let (tmp, path, dir) = (compactionPath, self.path, directory)
        let outcome = try await io.run { () throws(StoreError) -> Outcome in
            do throws(StoreError) {
                try beforeRename()
                try FileIO.rename(tmp, path)
            } catch {
                _ = try? FileIO.unlink(tmp)
                throw error
            }
            do throws(StoreError) {
                try FileIO.fsyncDirectory(dir)
                return .switched(SharedFile(fd: try FileIO.open(path, O_RDWR | O_APPEND), path: path))
            } catch {
                return .failedAfterRename(error)
            }
        }
        switch outcome {
        case .switched(let newFile):
            file = newFile
            size = newSize
            return true
        case .failedAfterRename(let error):
            failure = StoreError(.failed, "compaction failed after its rename (\(error)); reopen the store", path: path)
            logger.error("\(label): compaction failed after rename; refusing further writes", metadata: ["error": "\(error)"])
            return false
        }
    }

    // MARK: Closing

    /// Releases the lock (on the I/O thread). The store has flushed first and writes nothing
    /// after this; the file itself is closed when the last reader lets go of it (`SharedFile`).
    func close(isolation: isolated (any Actor)? = #isolation) async throws(StoreError) {
        guard let lockFD else { return }
        self.lockFD = nil
        try await io.run { FileIO.unlock(lockFD) }
    }
}
