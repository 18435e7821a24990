import FlowdJSON
import Glibc
import Logging

/// `runs.jsonl` lines: how they are written, replayed at open, and read back on demand.
///
/// One JSON object per line, `\n`-terminated:
/// - `{"op":"start","run":{…record…}}` — a run was created (queued or running);
/// - `{"op":"steps","run":{…record…},"steps":[{"agent","prompt","output","action","usage"?},…],"events":[…]}`
///   — steps a live run completed (its journal), with the events since its last such line;
///   the record makes a run whose start was never written (a `/run`'s) known from here;
/// - `{"op":"finish","run":{…final record…},"events":[{"id":1,"event":"progress","data":{…}},…]}`,
///   with `"steps":[…]` (the whole journal) when a failed or cancelled run has one;
/// - `{"op":"prune","before":"2026-11-25T12:00:00.000Z"}` — finished runs known at this
///   point whose `finished_at` is before that time are gone.
enum RunLog {
    /// Where a finished run's line is, and the parts of it that reads need. The record and
    /// the events are read from the file on demand; nothing else of the run stays in RAM.
    struct FinishedEntry: Sendable, Hashable {
        /// Offset of the line in the file (relative to its batch until the batch is written).
        var lineOffset: Int
        var finishedMS: Int64
        /// The line, newline included.
        var lineLength: UInt32
        /// The record object and the events array, relative to the line's start.
        var recordStart: UInt32
        var recordLength: UInt32
        var eventsStart: UInt32
        var eventsLength: UInt32
    }

    enum Line {
        case start(RunRecord)
        case steps(RunRecord, Journal)
        /// The run's id, where its line is, its idempotency key, and what the listing needs.
        case finish(String, FinishedEntry, key: String?, summary: RunIndex.Summary)
        case prune(beforeMS: Int64)
    }

    /// What a live run's `steps` lines hold so far.
    struct Journal: Sendable {
        var steps: [RunStep] = []
        var events: [RunEvent] = []

        mutating func append(_ more: Journal) {
            steps += more.steps
            events += more.events
        }
    }

    struct Recovered: Sendable {
        var active: [String: RunRecord] = [:]
        var finished: [String: FinishedEntry] = [:]
        /// What the listing index needs of each finished run.
        var summaries: [String: RunIndex.Summary] = [:]
        /// The journals of live runs.
        var journals: [String: Journal] = [:]
        /// Idempotency key → run id, for live and finished runs.
        var keys: [String: String] = [:]
        /// Live runs in the order they first appeared (their arrival order).
        var arrival: [String: Int] = [:]
        var arrivals = 0
        /// Bytes of good lines (the file is truncated to this when its tail was torn).
        var fileSize = 0
        /// Non-blank lines in the file, good or not: the compaction trigger compares them with live runs.
        var lines = 0
    }

    // MARK: Writing

    static func appendStart(_ record: RunRecord, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"op":"start","run":"#.utf8)
        record.appendJSON(to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    static func appendSteps(_ record: RunRecord, _ journal: Journal, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"op":"steps","run":"#.utf8)
        record.appendJSON(to: &out)
        appendArrays(journal.steps, journal.events, to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    /// `,"steps":[…],"events":[…]`.
    private static func appendArrays(_ steps: [RunStep], _ events: [RunEvent], to out: inout [UInt8]) {
        out.append(contentsOf: #","steps":["#.utf8)
        for (k, step) in steps.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            step.appendJSON(to: &out)
        }
        out.append(contentsOf: #"],"events":["#.utf8)
        for (k, event) in events.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            event.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Appends a finish line; the entry's `lineOffset` is where the line starts in `out`.
    static func appendFinish(_ record: RunRecord, events: [RunEvent], steps: [RunStep] = [], to out: inout [UInt8]) -> FinishedEntry {
        let start = out.count
        out.append(contentsOf: #"{"op":"finish","run":"#.utf8)
        let recordStart = out.count
        record.appendJSON(to: &out)
        let recordEnd = out.count
        out.append(contentsOf: #","events":["#.utf8)
        let eventsStart = out.count - 1
        for (k, event) in events.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            event.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
        let eventsEnd = out.count
        if !steps.isEmpty {
            out.append(contentsOf: #","steps":["#.utf8)
            for (k, step) in steps.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                step.appendJSON(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(contentsOf: "}\n".utf8)
        return FinishedEntry(
            lineOffset: start, finishedMS: record.finishedMilliseconds ?? 0,
            lineLength: UInt32(out.count - start),
            recordStart: UInt32(recordStart - start), recordLength: UInt32(recordEnd - recordStart),
            eventsStart: UInt32(eventsStart - start), eventsLength: UInt32(eventsEnd - eventsStart))
    }

    static func appendPrune(beforeMS: Int64, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"op":"prune","before":""#.utf8)
        ISOTime.append(milliseconds: beforeMS, to: &out)
        out.append(contentsOf: "\"}\n".utf8)
    }

    // MARK: Reading

    /// Decodes one line (without its newline); `offset` is the line's offset in the file.
    /// Nil, with a reason, when the line is not a valid run-log record.
    static func decode(_ line: UnsafeBufferPointer<UInt8>, at offset: Int, with parser: inout JSONParser) -> Result<Line, RunLogLineError> {
        parser.begin(line)
        guard parser.consume(UInt8(ascii: "{")) else { return .failure("not a JSON object") }
        var op: String?
        var record: JSONValue?
        var recordRange: Range<Int>?
        var events: Range<Int>?
        var stepsRange: Range<Int>?
        var before: String?
        do throws(JSONParseError) {
            if !parser.consume(UInt8(ascii: "}")) {
                repeat {
                    guard let name = parser.readPlainString(), parser.consume(UInt8(ascii: ":")) else {
                        return .failure("expected a member name")
                    }
                    switch String(decoding: name, as: UTF8.self) {
                    case "op":
                        op = try parser.readString()
                    case "run":
                        let start = parser.position()
                        record = try parser.readValue()
                        recordRange = start..<parser.offset
                    case "events":
                        guard let range = parser.skipContainer(), line[range.lowerBound] == UInt8(ascii: "[") else {
                            return .failure("events is not an array")
                        }
                        events = range
                    case "steps":
                        guard let range = parser.skipContainer(), line[range.lowerBound] == UInt8(ascii: "[") else {
                            return .failure("steps is not an array")
                        }
                        stepsRange = range
                    case "before":
                        before = try parser.readString()
                    default:
                        _ = try parser.readValue()
                    }
                } while parser.consume(UInt8(ascii: ","))
                guard parser.consume(UInt8(ascii: "}")) else { return .failure("expected '}'") }
            }
            guard parser.atEnd() else { return .failure("unexpected data after the object") }
        } catch {
            return .failure(RunLogLineError(error.description))
        }
        switch op {
        case "start":
            guard let record, let run = RunRecord(json: record), Identifier.isValidID(run.runID) else {
                return .failure("start without a valid run record")
            }
            return .success(.start(run))
        case "steps":
            guard let record, let run = RunRecord(json: record), Identifier.isValidID(run.runID), !run.status.isFinished else {
                return .failure("steps without a valid run record")
            }
            guard let stepsRange, let events else { return .failure("steps without steps or events") }
            guard let steps = decodeSteps(UnsafeBufferPointer(rebasing: line[stepsRange])),
                case .success(.array(let eventValues)) = JSONValue.parse(buffer: UnsafeBufferPointer(rebasing: line[events]))
            else { return .failure("unreadable steps or events") }
            var journal = Journal(steps: steps)
            for value in eventValues {
                guard let event = RunEvent(json: value) else { return .failure("unreadable event") }
                journal.events.append(event)
            }
            return .success(.steps(run, journal))
        case "finish":
            guard let record, let recordRange, let run = RunRecord(json: record), Identifier.isValidID(run.runID),
                run.status.isFinished, let finishedMS = run.finishedMilliseconds
            else { return .failure("finish without a valid finished run record") }
            guard let events else { return .failure("finish without events") }
            return .success(
                .finish(
                    run.runID,
                    FinishedEntry(
                        lineOffset: offset, finishedMS: finishedMS, lineLength: UInt32(line.count + 1),
                        recordStart: UInt32(recordRange.lowerBound), recordLength: UInt32(recordRange.count),
                        eventsStart: UInt32(events.lowerBound), eventsLength: UInt32(events.count)), key: run.idempotency?.key,
                    summary: RunIndex.Summary(run)))
        case "prune":
            guard let before, let ms = ISOTime.milliseconds(parsing: before) else { return .failure("prune without a valid time") }
            return .success(.prune(beforeMS: ms))
        default:
            return .failure("unknown op")
        }
    }

    static func apply(_ line: Line, to state: inout Recovered) {
        switch line {
        case .start(let record):
            state.finished[record.runID] = nil
            state.summaries[record.runID] = nil
            state.active[record.runID] = record
            state.arrived(record)
        case .steps(let record, let journal):
            guard state.finished[record.runID] == nil else { return }
            state.active[record.runID] = record
            state.journals[record.runID, default: Journal()].append(journal)
            state.arrived(record)
        case .finish(let id, let entry, let key, let summary):
            state.active[id] = nil
            state.journals[id] = nil
            state.arrival[id] = nil
            state.finished[id] = entry
            state.summaries[id] = summary
            if let key { state.keys[key] = id }
        case .prune(let before):
            let gone = Set(state.finished.lazy.filter { $0.value.finishedMS < before }.map(\.key))
            state.finished = state.finished.filter { !gone.contains($0.key) }
            if !gone.isEmpty { state.summaries = state.summaries.filter { !gone.contains($0.key) } }
            if !gone.isEmpty { state.keys = state.keys.filter { !gone.contains($0.value) } }
        }
    }

    /// A run's steps as a `steps` member holds them; nil when one is not a step.
    static func decodeSteps(_ bytes: UnsafeBufferPointer<UInt8>) -> [RunStep]? {
        guard case .success(.array(let values)) = JSONValue.parse(buffer: bytes) else { return nil }
        var steps: [RunStep] = []
        for value in values {
            guard let step = RunStep(json: value) else { return nil }
            steps.append(step)
        }
        return steps
    }

    /// The journal kept in a finished run's line (`steps`), read from the file.
    static func readSteps(_ file: SharedFile, _ entry: FinishedEntry) throws(StoreError) -> [RunStep] {
        let bytes = try FileIO.pread(file.fd, count: Int(entry.lineLength), at: entry.lineOffset, path: file.path)
        guard case .object(let line)? = try? JSONValue.parse(bytes[...]) else {
            throw StoreError(.corrupt, "unreadable run line at offset \(entry.lineOffset)", path: file.path)
        }
        guard case .array(let values)? = line["steps"] else { return [] }
        return values.compactMap(RunStep.init(json:))
    }

    /// The record of a finished run, read from its line.
    static func readRecord(_ file: SharedFile, _ entry: FinishedEntry) throws(StoreError) -> RunRecord {
        let bytes = try FileIO.pread(
            file.fd, count: Int(entry.recordLength), at: entry.lineOffset + Int(entry.recordStart), path: file.path)
        return try decodeRecord(bytes[...], at: entry.lineOffset, path: file.path)
    }

    /// The events of a finished run with id > `after`, read from its line.
    static func readEvents(_ file: SharedFile, _ entry: FinishedEntry, after: Int) throws(StoreError) -> [RunEvent] {
        let bytes = try FileIO.pread(
            file.fd, count: Int(entry.eventsLength), at: entry.lineOffset + Int(entry.eventsStart), path: file.path)
        return try decodeEvents(bytes[...], after: after, at: entry.lineOffset, path: file.path)
    }

    /// The record of a finish line held in RAM (a carried finish not yet written).
    static func record(in line: [UInt8], _ entry: FinishedEntry, path: String) throws(StoreError) -> RunRecord {
        let start = Int(entry.recordStart)
        return try decodeRecord(line[start..<(start + Int(entry.recordLength))], at: -1, path: path)
    }

    /// The events with id > `after` of a finish line held in RAM.
    static func events(in line: [UInt8], _ entry: FinishedEntry, after: Int, path: String) throws(StoreError) -> [RunEvent] {
        let start = Int(entry.eventsStart)
        return try decodeEvents(line[start..<(start + Int(entry.eventsLength))], after: after, at: -1, path: path)
    }

    private static func decodeRecord(_ bytes: ArraySlice<UInt8>, at offset: Int, path: String) throws(StoreError) -> RunRecord {
        guard let value = try? JSONValue.parse(bytes), let record = RunRecord(json: value) else {
            throw StoreError(.corrupt, "unreadable run record at offset \(offset)", path: path)
        }
        return record
    }

    private static func decodeEvents(_ bytes: ArraySlice<UInt8>, after: Int, at offset: Int, path: String) throws(StoreError) -> [RunEvent] {
        guard case .array(let values)? = try? JSONValue.parse(bytes) else {
            throw StoreError(.corrupt, "unreadable run events at offset \(offset)", path: path)
        }
        var events: [RunEvent] = []
        for value in values {
            guard let event = RunEvent(json: value) else {
                throw StoreError(.corrupt, "unreadable run event at offset \(offset)", path: path)
            }
            if event.id > after { events.append(event) }
        }
        return events
    }

    /// Replays the file open on `fd` (positioned at its start), with the rules of
    /// `LogReplay` for bad and torn lines.
    static func replay(fd: Int32, path: String, logger: Logger) throws(StoreError) -> Recovered {
        var reader = Replay()
        let outcome = try LogReplay.read(fd: fd, path: path, label: "runs", logger: logger, into: &reader)
        reader.state.fileSize = outcome.fileSize
        reader.state.lines = outcome.records
        return reader.state
    }

    private struct Replay: LineReader {
        var state = Recovered()
        var parser = JSONParser()

        mutating func take(_ line: UnsafeBufferPointer<UInt8>, offset: Int) -> LogReplay.Verdict {
            switch decode(line, at: offset, with: &parser) {
            case .success(let decoded):
                apply(decoded, to: &state)
                return .accepted(records: 1)
            case .failure(let error):
                return .rejected(reason: error.reason)
            }
        }
    }
}

extension RunLog.Recovered {
    mutating func arrived(_ record: RunRecord) {
        if arrival[record.runID] == nil {
            arrivals += 1
            arrival[record.runID] = arrivals
        }
        if let key = record.idempotency?.key { keys[key] = record.runID }
    }
}

/// Why a run-log line was rejected.
struct RunLogLineError: Error, ExpressibleByStringLiteral {
    let reason: String
    init(_ reason: String) { self.reason = reason }
    init(stringLiteral value: String) { self.reason = value }
}
