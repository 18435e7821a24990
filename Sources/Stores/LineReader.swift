/// What a log's replay makes of its lines (`LogReplay.read`).
protocol LineReader {
    mutating func take(_ line: UnsafeBufferPointer<UInt8>, offset: Int) -> LogReplay.Verdict
    /// After each chunk read: lines and bytes read so far, and the file's size.
    mutating func progress(lines: Int, bytesRead: Int, fileBytes: Int)
}

extension LineReader {
    mutating func progress(lines: Int, bytesRead: Int, fileBytes: Int) {}
}
