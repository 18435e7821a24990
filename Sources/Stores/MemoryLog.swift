import Glibc
import Logging

/// The memory file's lines: how they are written, and how a file is replayed at open.
///
/// One JSON object per line, `\n`-terminated:
/// - `{"op":"set","scope":"isolated","key":"k","value":…}`
/// - `{"op":"del","scope":"isolated","key":"k"}`
/// - `{"tx":[<op>,<op>,…]}` — a committed transaction, applied whole or (torn, corrupt) not at all.
enum MemoryLog {
    /// The live state a replay ends with, and what the file holds.
    struct Recovered: Sendable {
        var maps: [ShardedMap<JSONValue>]
        /// Bytes of good lines (the file is truncated to this when its tail was torn).
        var fileSize: Int
        /// Operations (and corrupt lines) in the file: the compaction trigger compares this with live keys.
        var records: Int
    }

    // MARK: Writing

    static func appendOperation(_ op: MemoryTransaction.Operation, to out: inout [UInt8]) {
        switch op {
        case .set(let scope, let key, let value):
            out.append(contentsOf: #"{"op":"set","scope":""#.utf8)
            out.append(contentsOf: scope.rawValue.utf8)
            out.append(contentsOf: #"","key":"#.utf8)
            JSONValue.appendString(key, to: &out)
            out.append(contentsOf: #","value":"#.utf8)
            value.serialize(into: &out)
            out.append(UInt8(ascii: "}"))
        case .delete(let scope, let key):
            out.append(contentsOf: #"{"op":"del","scope":""#.utf8)
            out.append(contentsOf: scope.rawValue.utf8)
            out.append(contentsOf: #"","key":"#.utf8)
            JSONValue.appendString(key, to: &out)
            out.append(UInt8(ascii: "}"))
        }
    }

    /// One line: a bare operation when there is one, a `{"tx":[…]}` line otherwise.
    static func appendLine(_ ops: [MemoryTransaction.Operation], to out: inout [UInt8]) {
        if ops.count == 1 {
            appendOperation(ops[0], to: &out)
        } else {
            out.append(contentsOf: #"{"tx":["#.utf8)
            for (k, op) in ops.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                appendOperation(op, to: &out)
            }
            out.append(contentsOf: "]}".utf8)
        }
        out.append(UInt8(ascii: "\n"))
    }

    // MARK: Reading

    private static func decodeOperation(_ value: JSONValue) -> MemoryTransaction.Operation? {
        guard case .object(let o) = value,
            case .string(let op)? = o["op"],
            case .string(let scopeName)? = o["scope"],
            let scope = MemoryScope(rawValue: scopeName),
            case .string(let key)? = o["key"],
            Identifier.isValidMemoryKey(key)
        else { return nil }
        switch op {
        case "set":
            guard let v = o["value"] else { return nil }
            return .set(scope, key: key, value: v)
        case "del":
            return .delete(scope, key: key)
        default:
            return nil
        }
    }

    /// The operations of one line, or nil when the line is not a valid record.
    static func decodeLine(_ value: JSONValue) -> [MemoryTransaction.Operation]? {
        if case .object(let o) = value, o.count == 1, case .array(let elements)? = o["tx"] {
            var ops: [MemoryTransaction.Operation] = []
            ops.reserveCapacity(elements.count)
            for e in elements {
                guard let op = decodeOperation(e) else { return nil }
                ops.append(op)
            }
            return ops
        }
        return decodeOperation(value).map { [$0] }
    }

    /// Fast path for the common line, a single `set`/`del` whose member names are plain:
    /// reads the envelope in place and builds only the key and the value. Nil means
    /// "not that simple": the caller decodes the line the general way.
    static func decodeSimpleOperation(_ line: UnsafeBufferPointer<UInt8>, with parser: inout JSONParser) -> MemoryTransaction.Operation? {
        parser.begin(line)
        guard parser.consume(UInt8(ascii: "{")) else { return nil }
        var isSet: Bool?
        var scope: MemoryScope?
        var key: String?
        var value: JSONValue?
        do throws(JSONParseError) {
            repeat {
                guard let name = parser.readPlainString(), parser.consume(UInt8(ascii: ":")) else { return nil }
                if equals(name, "op") {
                    guard let op = parser.readPlainString() else { return nil }
                    if equals(op, "set") {
                        isSet = true
                    } else if equals(op, "del") {
                        isSet = false
                    } else {
                        return nil
                    }
                } else if equals(name, "scope") {
                    guard let s = parser.readPlainString() else { return nil }
                    if equals(s, "isolated") {
                        scope = .isolated
                    } else if equals(s, "shared") {
                        scope = .shared
                    } else if equals(s, "global") {
                        scope = .global
                    } else {
                        return nil
                    }
                } else if equals(name, "key") {
                    key = try parser.readString()
                } else if equals(name, "value") {
                    value = try parser.readValue()
                } else {
                    return nil
                }
            } while parser.consume(UInt8(ascii: ","))
            guard parser.consume(UInt8(ascii: "}")), parser.atEnd() else { return nil }
        } catch {
            return nil
        }
        guard let isSet, let scope, let key, Identifier.isValidMemoryKey(key) else { return nil }
        if isSet {
            guard let value else { return nil }
            return .set(scope, key: key, value: value)
        }
        return .delete(scope, key: key)
    }

    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        return memcmp(bytes.baseAddress!, word.utf8Start, bytes.count) == 0
    }

    static func apply(_ op: MemoryTransaction.Operation, to maps: inout [ShardedMap<JSONValue>]) {
        switch op {
        case .set(let scope, let key, let value): maps[scope.index][key] = value
        case .delete(let scope, let key): maps[scope.index][key] = nil
        }
    }

    /// Replays the file open on `fd` (positioned at its start) into the live state.
    ///
    /// A corrupt line followed by good lines is skipped with a warning (file, line number)
    /// and left in place; a torn last line — no trailing newline, or unparsable — is
    /// skipped with a warning and cut off (`ftruncate` + `fsync`) so that new appends
    /// start on a clean line.
    static func replay(fd: Int32, path: String, logger: Logger) throws(StoreError) -> Recovered {
        var maps = [ShardedMap<JSONValue>](repeating: ShardedMap(), count: MemoryScope.allCases.count)
        var records = 0
        var parser = JSONParser()

        var capacity = 4 << 20
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var filled = 0  // bytes in buffer
        var base = 0  // file offset of buffer[0]
        var lineNumber = 0
        var st = Glibc.stat()
        let fileBytes = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        var reserved = false
        // A bad line is reported once we know whether it was the last one.
        var pendingBad: (line: Int, offset: Int, reason: String)?

        func reportMiddle(_ bad: (line: Int, offset: Int, reason: String)) {
            logger.warning(
                "memory: skipped corrupt line",
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
            while searchFrom < filled,
                let nl = memchr(bytes + searchFrom, 0x0A, filled - searchFrom)
            {
                let end = bytes.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                lineNumber += 1
                let line = UnsafeBufferPointer(start: bytes + lineStart, count: end - lineStart)
                if !isBlank(line) {
                    if let bad = pendingBad {
                        reportMiddle(bad)
                        pendingBad = nil
                    }
                    records += 1
                    if let op = decodeSimpleOperation(line, with: &parser) {
                        apply(op, to: &maps)
                    } else {
                        do throws(JSONParseError) {
                            let value = try parser.parseDocument(line)
                            if let ops = decodeLine(value) {
                                records += ops.count - 1
                                for op in ops { apply(op, to: &maps) }
                            } else {
                                pendingBad = (lineNumber, base + lineStart, "not a memory record")
                            }
                        } catch {
                            pendingBad = (lineNumber, base + lineStart, error.description)
                        }
                    }
                }
                lineStart = end + 1
                searchFrom = lineStart
            }
            if !reserved, lineNumber > 0 {
                // Most keys are isolated ones; a compacted file has about one line per key, and
                // compaction keeps files under four lines per key: reserve for half the lines.
                reserved = true
                let estimatedLines = fileBytes / max(1, (base + lineStart) / lineNumber)
                maps[MemoryScope.isolated.index].reserveCapacity(estimatedLines / 2)
            }
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
                "memory: skipped torn last line (no newline); cutting it off",
                metadata: ["file": "\(path)", "line": "\(lineNumber + 1)", "bytes": "\(filled)"])
            goodSize = base
        } else if let bad = pendingBad {
            logger.warning(
                "memory: skipped torn last line (unparsable); cutting it off",
                metadata: ["file": "\(path)", "line": "\(bad.line)", "reason": "\(bad.reason)"])
            goodSize = bad.offset
            records -= 1
        }
        if goodSize != base + filled {
            try FileIO.truncate(fd, to: goodSize, path: path)
            try FileIO.fsync(fd, path: path)
        }
        return Recovered(maps: maps, fileSize: goodSize, records: records)
    }

    private static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in line where b != 0x20 && b != 0x09 && b != 0x0D { return false }
        return true
    }
}
