import Glibc
import Logging

/// Reads a store's JSONL log from its start at open, line by line, with the rules every
/// log of the data dir shares:
/// - blank lines are ignored;
/// - a bad line followed by good lines is skipped with a warning (file, line number) and
///   left in place;
/// - a torn last line (no newline, or one the store rejects) is skipped with a warning and
///   cut off (`ftruncate` + `fsync`), so that new appends start on a clean line.
enum LogReplay {
    /// What the store makes of one line.
    enum Verdict {
        /// Taken; it counts as `records` records (the compaction triggers count them).
        case accepted(records: Int)
        case rejected(reason: String)
    }

    struct Outcome {
        /// Bytes of good lines: the file's size once a torn tail is cut off.
        var fileSize: Int
        /// Records of accepted lines, plus one per bad line left in place.
        var records: Int
    }

    /// Hands each non-blank line and its file offset to `reader`, in order. `label` names
    /// the log in warnings (`memory`, `runs`). Generic so that the reader's code is
    /// specialised into the loop (a million lines are read at start-up).
    static func read<Reader: LineReader>(
        fd: Int32, path: String, label: String, logger: Logger, into reader: inout Reader
    ) throws(StoreError) -> Outcome {
        var capacity = 4 << 20
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var filled = 0  // bytes in buffer
        var base = 0  // file offset of buffer[0]
        var lineNumber = 0
        var records = 0
        var st = Glibc.stat()
        let fileBytes = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        // A bad line is reported once we know whether it was the last one.
        var pendingBad: (line: Int, offset: Int, reason: String)?

        func reportMiddle(_ bad: (line: Int, offset: Int, reason: String)) {
            logger.warning(
                "\(label): skipped corrupt line",
                metadata: ["file": "\(path)", "line": "\(bad.line)", "reason": "\(bad.reason)"])
        }

        while true {
            if filled == capacity {
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity * 2, alignment: 16)
                bigger.copyMemory(from: UnsafeRawBufferPointer(buffer))
                buffer.deallocate()
                buffer = bigger
                capacity *= 2
            }
            let n = try FileIO.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]), path: path)
            if n == 0 { break }
            let scanFrom = filled
            filled += n

            let bytes = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var lineStart = 0
            var searchFrom = scanFrom
            while searchFrom < filled, let nl = memchr(bytes + searchFrom, 0x0A, filled - searchFrom) {
                let end = bytes.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                lineNumber += 1
                let line = UnsafeBufferPointer(start: bytes + lineStart, count: end - lineStart)
                if !isBlank(line) {
                    if let bad = pendingBad {
                        reportMiddle(bad)
                        pendingBad = nil
                    }
                    switch reader.take(line, offset: base + lineStart) {
                    case .accepted(let count):
                        records += count
                    case .rejected(let reason):
                        records += 1
                        pendingBad = (lineNumber, base + lineStart, reason)
                    }
                }
                lineStart = end + 1
                searchFrom = lineStart
            }
            reader.progress(lines: lineNumber, bytesRead: base + lineStart, fileBytes: fileBytes)
            if lineStart > 0 {
                let rest = filled - lineStart
                if rest > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + lineStart, rest) }
                base += lineStart
                filled = rest
            }
        }

        var goodSize = base + filled
        if filled > 0 {
            // Bytes after the last newline: a write cut short, never acknowledged.
            if let bad = pendingBad {
                reportMiddle(bad)
                pendingBad = nil
            }
            logger.warning(
                "\(label): skipped torn last line (no newline); cutting it off",
                metadata: ["file": "\(path)", "line": "\(lineNumber + 1)", "bytes": "\(filled)"])
            goodSize = base
        } else if let bad = pendingBad {
            logger.warning(
                "\(label): skipped torn last line (unparsable); cutting it off",
                metadata: ["file": "\(path)", "line": "\(bad.line)", "reason": "\(bad.reason)"])
            goodSize = bad.offset
            records -= 1
        }
        if goodSize != base + filled {
            try FileIO.truncate(fd, to: goodSize, path: path)
            try FileIO.fsync(fd, path: path)
        }
        return Outcome(fileSize: goodSize, records: records)
    }

    private static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in line where b != 0x20 && b != 0x09 && b != 0x0D { return false }
        return true
    }
}
