import FlowdJSON
import Glibc
import Logging

/// The memory file's lines: how they are written, and how a file is replayed at open.
///
/// One JSON object per line, `\n`-terminated:
/// - `{"op":"set","scope":"isolated","key":"k","value":…}`
/// - `{"op":"del","scope":"isolated","key":"k"}`
/// - `{"tx":[<op>,<op>,…]}` — a committed transaction, applied whole or (torn, corrupt) not at all;
/// - `{"tx":[…],"run":{"op":"finish",…}}` — a run's transaction carrying its finish line
///   (`CarriedFinish`): the memory store does not apply it, it hands it to the run store.
enum MemoryLog {
    /// The live state a replay ends with, and what the file holds.
    struct Recovered: Sendable {
        var maps: [ShardedMap<JSONValue>]
        /// Bytes of good lines (the file is truncated to this when its tail was torn).
        var fileSize: Int
        /// Operations (and corrupt lines) in the file: the compaction trigger compares this with live keys.
        var records: Int
        /// Carried finishes whose run the run store did not have (only when asked to look).
        var unstoredFinishes: [CarriedFinish]
        /// Bytes of the lines that carry a run finish.
        var carriedBytes: Int
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

    /// One line: a bare operation when there is one and nothing is carried, a `{"tx":[…]}`
    /// line otherwise (with the carried finish as its `run` member).
    static func appendLine(_ ops: [MemoryTransaction.Operation], carrying carried: CarriedFinish? = nil, to out: inout [UInt8]) {
        if let carried {
            out.append(contentsOf: #"{"tx":["#.utf8)
            for (k, op) in ops.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                appendOperation(op, to: &out)
            }
            out.append(contentsOf: #"],"run":"#.utf8)
            out.append(contentsOf: carried.bytes)
            out.append(UInt8(ascii: "}"))
        } else if ops.count == 1 {
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
        decodeRecord(value)?.ops
    }

    /// The operations of one line and the finish it carries (a `run` member), or nil when
    /// the line is not a valid record.
    static func decodeRecord(_ value: JSONValue) -> (ops: [MemoryTransaction.Operation], carried: JSONValue?)? {
        if case .object(let o) = value, case .array(let elements)? = o["tx"],
            o.count == 1 || (o.count == 2 && o["run"]?.objectValue != nil)
        {
            var ops: [MemoryTransaction.Operation] = []
            ops.reserveCapacity(elements.count)
            for e in elements {
                guard let op = decodeOperation(e) else { return nil }
                ops.append(op)
            }
            return (ops, o["run"])
        }
        return decodeOperation(value).map { ([$0], nil) }
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

    /// Replays the file open on `fd` (positioned at its start) into the live state, with
    /// the rules of `LogReplay` for bad and torn lines. With `isStoredRun`, the carried
    /// finishes of runs it does not know are collected, in file order.
    static func replay(fd: Int32, path: String, logger: Logger, isStoredRun: (@Sendable (String) -> Bool)? = nil) throws(StoreError) -> Recovered {
        var reader = Replay(isStoredRun: isStoredRun)
        let outcome = try LogReplay.read(fd: fd, path: path, label: "memory", logger: logger, into: &reader)
        if reader.unreadableFinishes > 0 {
            logger.warning("memory: carried run finishes that do not decode were skipped",
                           metadata: ["file": "\(path)", "count": "\(reader.unreadableFinishes)"])
        }
        return Recovered(maps: reader.maps, fileSize: outcome.fileSize, records: outcome.records,
                         unstoredFinishes: reader.unstored, carriedBytes: reader.carriedBytes)
    }

    private struct Replay: LineReader {
        var maps = [ShardedMap<JSONValue>](repeating: ShardedMap(), count: MemoryScope.allCases.count)
        var parser = JSONParser()
        var reserved = false
        let isStoredRun: (@Sendable (String) -> Bool)?
        var unstored: [CarriedFinish] = []
        var unreadableFinishes = 0
        var carriedBytes = 0

        init(isStoredRun: (@Sendable (String) -> Bool)?) {
            self.isStoredRun = isStoredRun
        }

        /// Keeps a carried finish whose run the run store lacks.
        mutating func collect(_ carried: JSONValue) {
            guard let isStoredRun else { return }
            guard let id = carried["run"]?["run_id"]?.stringValue else {
                unreadableFinishes += 1
                return
            }
            if isStoredRun(id) { return }
            guard let finish = CarriedFinish(decoding: carried.serialized()) else {
                unreadableFinishes += 1
                return
            }
            unstored.append(finish)
        }

        mutating func take(_ line: UnsafeBufferPointer<UInt8>, offset: Int) -> LogReplay.Verdict {
            if let op = decodeSimpleOperation(line, with: &parser) {
                apply(op, to: &maps)
                return .accepted(records: 1)
            }
            do throws(JSONParseError) {
                guard let (ops, carried) = decodeRecord(try parser.parseDocument(line)) else {
                    return .rejected(reason: "not a memory record")
                }
                for op in ops { apply(op, to: &maps) }
                if let carried {
                    carriedBytes += line.count + 1
                    collect(carried)
                }
                return .accepted(records: ops.count)
            } catch {
                return .rejected(reason: error.description)
            }
        }

        mutating func progress(lines: Int, bytesRead: Int, fileBytes: Int) {
            guard !reserved, lines > 0 else { return }
            // Most keys are isolated ones; a compacted file has about one line per key, and
            // compaction keeps files under four lines per key: reserve for half the lines.
            reserved = true
            let estimatedLines = fileBytes / max(1, bytesRead / lines)
            maps[MemoryScope.isolated.index].reserveCapacity(estimatedLines / 2)
        }
    }
}
