import Glibc

/// Thin POSIX wrappers that retry on `EINTR` and throw `StoreError` naming the file.
/// The blocking ones (`fsync`, `fdatasync`, `rename`) are meant for an `IOThread`.
enum FileIO {
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(StoreError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw .system("open", path: path) }
        }
    }

    /// Opens for reading; nil when the file does not exist.
    static func openIfExists(_ path: String, _ flags: Int32 = O_RDONLY) throws(StoreError) -> Int32? {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC)
            if fd >= 0 { return fd }
            if errno == ENOENT || errno == ENOTDIR { return nil }
            if errno != EINTR { throw .system("open", path: path) }
        }
    }

    /// Opens `<dir>/<name>` and takes an exclusive `flock` on it: one process per store.
    /// Throws `.locked`, saying that `what` is in use, when another process holds it.
    static func lockExclusively(_ dir: String, _ name: String, what: String) throws(StoreError) -> Int32 {
        let lockPath = dir + "/" + name
        let lockFD = try open(lockPath, O_RDWR | O_CREAT)
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(lockFD)
            if code == EWOULDBLOCK { throw StoreError(.locked, "\(what) in use by another process", path: lockPath) }
            throw StoreError.system("flock", path: lockPath, errno: code)
        }
        return lockFD
    }

    /// Releases a lock taken by `lockExclusively` and closes its descriptor. The explicit
    /// `LOCK_UN` matters: a `flock` belongs to the open file, which a child forked by another
    /// thread shares until its `exec` (`O_CLOEXEC` acts only then), so a bare `close` could
    /// leave the lock held for as long as that child takes to get there.
    static func unlock(_ lockFD: Int32) {
        _ = flock(lockFD, LOCK_UN)
        _ = Glibc.close(lockFD)
    }

    /// Opens the append-only log `<dir>/<name>` for appends, creating it durably (file and
    /// directory fsync'd) when missing; drops what a crashed compaction left (`compactionName`).
    static func openLog(_ dir: String, _ name: String, compactionName: String) throws(StoreError) -> Int32 {
        let path = dir + "/" + name
        // A compaction that crashed before its rename left only a temporary file.
        _ = try unlink(dir + "/" + compactionName)
        if let existing = try openIfExists(path, O_RDWR | O_APPEND) { return existing }
        let fd = try open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL)
        try fsync(fd, path: path)
        try fsyncDirectory(dir)
        return fd
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(StoreError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                throw .system("write", path: path, errno: n < 0 ? errno : EIO)
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StoreError) {
        let result: Result<Void, StoreError> = bytes.withUnsafeBytes { raw in
            do throws(StoreError) {
                try writeAll(fd, raw, path: path)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Reads up to `count` bytes into `buffer` at `offset`; returns the number read (0 at end of file).
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(StoreError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress!, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw .system("read", path: path) }
        }
    }

    static func fdatasync(_ fd: Int32, path: String) throws(StoreError) {
        while Glibc.fdatasync(fd) != 0 {
            if errno != EINTR { throw .system("fdatasync", path: path) }
        }
    }

    static func fsync(_ fd: Int32, path: String) throws(StoreError) {
        while Glibc.fsync(fd) != 0 {
            if errno != EINTR { throw .system("fsync", path: path) }
        }
    }

    /// Makes a directory entry change (create, rename, unlink) durable.
    static func fsyncDirectory(_ path: String) throws(StoreError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    static func truncate(_ fd: Int32, to size: Int, path: String) throws(StoreError) {
        while ftruncate(fd, off_t(size)) != 0 {
            if errno != EINTR { throw .system("ftruncate", path: path) }
        }
    }

    static func rename(_ from: String, _ to: String) throws(StoreError) {
        if Glibc.rename(from, to) != 0 { throw .system("rename to \(to)", path: from) }
    }

    /// Removes a file; false when it did not exist.
    static func unlink(_ path: String) throws(StoreError) -> Bool {
        if Glibc.unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw .system("unlink", path: path)
    }

    /// `stat` of a path; nil when it does not exist.
    static func statIfExists(_ path: String) throws(StoreError) -> Glibc.stat? {
        var st = Glibc.stat()
        if stat(path, &st) == 0 { return st }
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw .system("stat", path: path)
    }

    static func isRegular(_ st: Glibc.stat) -> Bool {
        (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Creates `path` and its missing parents; each created directory's parent is fsync'd.
    static func makeDirectories(_ path: String) throws(StoreError) {
        if let st = try statIfExists(path) {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw StoreError(.io, "not a directory", path: path) }
            return
        }
        let parent = parentDirectory(of: path)
        if parent != path { try makeDirectories(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw .system("mkdir", path: path) }
        try fsyncDirectory(parent)
    }

    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The whole content of a regular file; nil when it does not exist or is not a regular file.
    /// Opened non-blocking so that a FIFO placed by hand cannot hang the caller.
    static func readRegularFile(_ path: String) throws(StoreError) -> [UInt8]? {
        guard let fd = try openIfExists(path, O_RDONLY | O_NONBLOCK) else { return nil }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw .system("fstat", path: path) }
        guard isRegular(st) else { return nil }
        var bytes = [UInt8](repeating: 0, count: max(Int(st.st_size), 0) + 1)
        var count = 0
        while true {
            if count == bytes.count { bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 4096))) }
            let result: Result<Int, StoreError> = bytes.withUnsafeMutableBytes { raw in
                do throws(StoreError) {
                    return .success(try read(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[count...]), path: path))
                } catch {
                    return .failure(error)
                }
            }
            let n = try result.get()
            if n == 0 { break }
            count += n
        }
        bytes.removeSubrange(count...)
        return bytes
    }
}

extension FileIO {
    /// Reads exactly `count` bytes at `offset` (`pread`, so concurrent readers of one fd do not
    /// disturb each other); throws `.corrupt` when the file ends first.
    static func pread(_ fd: Int32, count: Int, at offset: Int, path: String) throws(StoreError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        let failure: StoreError? = bytes.withUnsafeMutableBytes { raw in
            while done < count {
                let n = Glibc.pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n > 0 {
                    done += n
                } else if n == 0 {
                    return StoreError(.corrupt, "file ends before the expected record", path: path)
                } else if errno != EINTR {
                    return .system("pread", path: path)
                }
            }
            return nil
        }
        if let failure { throw failure }
        return bytes
    }
}
