import Glibc

/// An open file shared by a store and its readers: closed when the last holder lets go,
/// so a reader that took it before a compaction keeps reading the old file safely.
final class SharedFile: Sendable {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { FileIO.close(fd) }
}
