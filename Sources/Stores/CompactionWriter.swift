/// A compaction's new file being written (`AppendLog.writeCompaction`): lines go to `buffer`
/// and reach the file a megabyte at a time.
struct CompactionWriter {
    let fd: Int32
    let path: String
    var buffer: [UInt8] = []
    /// Bytes written to the file so far (not counting `buffer`).
    private(set) var written = 0

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    /// The size of the file once `buffer` is written: where the next line will start.
    var size: Int { written + buffer.count }

    /// Writes the buffer out once it holds a megabyte (or now, with `force`).
    mutating func spill(force: Bool = false) throws(StoreError) {
        guard force || buffer.count >= 1 << 20 else { return }
        try FileIO.writeAll(fd, buffer, path: path)
        written += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
}
