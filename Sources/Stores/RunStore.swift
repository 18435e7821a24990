import Foundation

/// Where a run stands. `queued` and `running` are live; the others are final.
public enum RunStatus: String, Sendable, CaseIterable, Hashable {
    case queued, running, succeeded
    case pendingDocs = "pending_docs"
    case failed, cancelled

    /// True for the final states: `succeeded`, `pending_docs`, `failed`, `cancelled`.
    public var isFinished: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .pendingDocs, .failed, .cancelled: true
        }
    }
}

/// A run's record, as `GET /runs/{id}` shows it.
///
/// Times are kept to the millisecond (they are rounded to the nearest millisecond when
/// set), which is what the JSON form carries, so a record reads back equal after a restart.
public struct RunRecord: Sendable, Hashable {
    public var runID: String
    public var flow: String
    public var storyID: String
    public var status: RunStatus
    public var result: String?
    public var pendingDocs: [String]?
    /// The detail of a failed or cancelled run.
    public var error: String?
    private var createdMS: Int64
    private var finishedMS: Int64?

    public var createdAt: Date {
        get { ISOTime.date(milliseconds: createdMS) }
        set { createdMS = ISOTime.milliseconds(newValue) }
    }

    public var finishedAt: Date? {
        get { finishedMS.map(ISOTime.date(milliseconds:)) }
        set { finishedMS = newValue.map(ISOTime.milliseconds) }
    }

    public init(
        runID: String, flow: String, storyID: String, status: RunStatus,
        result: String? = nil, pendingDocs: [String]? = nil, error: String? = nil,
        createdAt: Date, finishedAt: Date? = nil
    ) {
        self.runID = runID
        self.flow = flow
        self.storyID = storyID
        self.status = status
        self.result = result
        self.pendingDocs = pendingDocs
        self.error = error
        self.createdMS = ISOTime.milliseconds(createdAt)
        self.finishedMS = finishedAt.map(ISOTime.milliseconds)
    }

    var finishedMilliseconds: Int64? { finishedMS }

    /// `{"run_id","flow","story_id","status","result","pending_docs","error","created_at","finished_at"}`,
    /// in that order, `null` where absent, times ISO 8601 UTC with milliseconds.
    public var json: JSONValue {
        var o = JSONObject()
        o["run_id"] = .string(runID)
        o["flow"] = .string(flow)
        o["story_id"] = .string(storyID)
        o["status"] = .string(status.rawValue)
        o["result"] = result.map(JSONValue.string) ?? .null
        o["pending_docs"] = pendingDocs.map { .array($0.map(JSONValue.string)) } ?? .null
        o["error"] = error.map(JSONValue.string) ?? .null
        o["created_at"] = .string(ISOTime.string(milliseconds: createdMS))
        o["finished_at"] = finishedMS.map { .string(ISOTime.string(milliseconds: $0)) } ?? .null
        return .object(o)
    }

    /// Reads the JSON form back; nil when a member is missing or of the wrong type, the
    /// status is unknown or a time is not ISO 8601. `result`, `pending_docs`, `error` and
    /// `finished_at` may be absent (read as null).
    public init?(json: JSONValue) {
        guard case .object(let o) = json,
            case .string(let runID)? = o["run_id"],
            case .string(let flow)? = o["flow"],
            case .string(let storyID)? = o["story_id"],
            case .string(let statusName)? = o["status"],
            let status = RunStatus(rawValue: statusName),
            case .string(let created)? = o["created_at"],
            let createdMS = ISOTime.milliseconds(parsing: created)
        else { return nil }
        func optionalString(_ key: String) -> String?? {
            switch o[key] {
            case nil, .null?: return .some(nil)
            case .string(let s)?: return .some(s)
            default: return nil
            }
        }
        guard let result = optionalString("result"), let error = optionalString("error"),
            let finished = optionalString("finished_at")
        else { return nil }
        var pendingDocs: [String]?
        switch o["pending_docs"] {
        case nil, .null?: pendingDocs = nil
        case .array(let a)?:
            var ids: [String] = []
            ids.reserveCapacity(a.count)
            for e in a {
                guard case .string(let s) = e else { return nil }
                ids.append(s)
            }
            pendingDocs = ids
        default: return nil
        }
        var finishedMS: Int64?
        if let finished {
            guard let ms = ISOTime.milliseconds(parsing: finished) else { return nil }
            finishedMS = ms
        }
        self.runID = runID
        self.flow = flow
        self.storyID = storyID
        self.status = status
        self.result = result
        self.pendingDocs = pendingDocs
        self.error = error
        self.createdMS = createdMS
        self.finishedMS = finishedMS
    }

    /// Appends the same JSON as `json`, without building it.
    func appendJSON(to out: inout [UInt8]) {
        func string(_ s: String?) {
            if let s { JSONValue.appendString(s, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        out.append(contentsOf: #"{"run_id":"#.utf8)
        JSONValue.appendString(runID, to: &out)
        out.append(contentsOf: #","flow":"#.utf8)
        JSONValue.appendString(flow, to: &out)
        out.append(contentsOf: #","story_id":"#.utf8)
        JSONValue.appendString(storyID, to: &out)
        out.append(contentsOf: #","status":""#.utf8)
        out.append(contentsOf: status.rawValue.utf8)
        out.append(contentsOf: #"","result":"#.utf8)
        string(result)
        out.append(contentsOf: #","pending_docs":"#.utf8)
        if let pendingDocs {
            out.append(UInt8(ascii: "["))
            for (k, id) in pendingDocs.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.appendString(id, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(contentsOf: #","error":"#.utf8)
        string(error)
        out.append(contentsOf: #","created_at":""#.utf8)
        ISOTime.append(milliseconds: createdMS, to: &out)
        out.append(contentsOf: #"","finished_at":"#.utf8)
        if let finishedMS {
            out.append(UInt8(ascii: "\""))
            ISOTime.append(milliseconds: finishedMS, to: &out)
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// One Server-Sent Event of a run.
///
/// The events a run emits while it goes (`progress`, `result`) keep their few fields as
/// they are and are serialised straight to bytes; `data` builds the JSON object only for
/// whoever asks. Two events are equal when their id, name and data are.
public struct RunEvent: Sendable, Hashable {
    /// 1, 2, 3, … within the run (the SSE `id:`).
    public var id: Int
    /// `progress`, `result`, `done`, `error` or `cancelled` (the SSE `event:`).
    public var name: String
    private var payload: Payload

    private enum Payload: Sendable {
        /// `{"run_id","agent","status","timestamp"}`, plus `"duration"` when given.
        case progress(runID: String, agent: String, status: String, timestampMS: Int64, duration: Double?)
        /// `{"run_id","agent","data"}`.
        case result(runID: String, agent: String, output: String)
        case json(JSONValue)
    }

    public init(id: Int, name: String, data: JSONValue) {
        self.id = id
        self.name = name
        self.payload = .json(data)
    }

    /// `event: progress` of an agent: `status` is `started`, `completed` or `failed`;
    /// `duration` (seconds) goes with the last two.
    public static func progress(id: Int, runID: String, agent: String, status: String, at time: Date,
                                duration: Double? = nil) -> RunEvent {
        RunEvent(id: id, name: "progress", payload: .progress(
            runID: runID, agent: agent, status: status, timestampMS: ISOTime.milliseconds(time), duration: duration))
    }

    /// `event: result`: an agent's output, right after its `completed` progress.
    public static func result(id: Int, runID: String, agent: String, output: String) -> RunEvent {
        RunEvent(id: id, name: "result", payload: .result(runID: runID, agent: agent, output: output))
    }

    private init(id: Int, name: String, payload: Payload) {
        self.id = id
        self.name = name
        self.payload = payload
    }

    /// The event's data object.
    public var data: JSONValue {
        get {
            switch payload {
            case .json(let value):
                return value
            case .progress(let runID, let agent, let status, let ms, let duration):
                var o: JSONObject = ["run_id": .string(runID), "agent": .string(agent), "status": .string(status),
                                     "timestamp": .string(ISOTime.string(milliseconds: ms))]
                if let duration { o["duration"] = .double(duration) }
                return .object(o)
            case .result(let runID, let agent, let output):
                return ["run_id": .string(runID), "agent": .string(agent), "data": .string(output)]
            }
        }
        set { payload = .json(newValue) }
    }

    /// Appends `data` as JSON, without building it.
    public func appendData(to out: inout [UInt8]) {
        switch payload {
        case .json(let value):
            value.serialize(into: &out)
        case .progress(let runID, let agent, let status, let ms, let duration):
            out.append(contentsOf: #"{"run_id":"#.utf8)
            JSONValue.appendString(runID, to: &out)
            out.append(contentsOf: #","agent":"#.utf8)
            JSONValue.appendString(agent, to: &out)
            out.append(contentsOf: #","status":"#.utf8)
            JSONValue.appendString(status, to: &out)
            out.append(contentsOf: #","timestamp":""#.utf8)
            ISOTime.append(milliseconds: ms, to: &out)
            out.append(UInt8(ascii: "\""))
            if let duration {
                out.append(contentsOf: #","duration":"#.utf8)
                JSONValue.double(duration).serialize(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .result(let runID, let agent, let output):
            out.append(contentsOf: #"{"run_id":"#.utf8)
            JSONValue.appendString(runID, to: &out)
            out.append(contentsOf: #","agent":"#.utf8)
            JSONValue.appendString(agent, to: &out)
            out.append(contentsOf: #","data":"#.utf8)
            JSONValue.appendString(output, to: &out)
            out.append(UInt8(ascii: "}"))
        }
    }

    public static func == (a: RunEvent, b: RunEvent) -> Bool {
        a.id == b.id && a.name == b.name && a.data == b.data
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(name)
        hasher.combine(data)
    }

    /// `{"id":1,"event":"progress","data":{…}}`, the form the run log keeps.
    public var json: JSONValue {
        ["id": .int(Int64(id)), "event": .string(name), "data": data]
    }

    public init?(json: JSONValue) {
        guard case .object(let o) = json,
            case .int(let id)? = o["id"], let id = Int(exactly: id),
            case .string(let name)? = o["event"],
            let data = o["data"]
        else { return nil }
        self.init(id: id, name: name, data: data)
    }

    /// Appends `json`, without building it.
    public func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"id":"#.utf8)
        JSONValue.appendInteger(Int64(id), to: &out)
        out.append(contentsOf: #","event":"#.utf8)
        JSONValue.appendString(name, to: &out)
        out.append(contentsOf: #","data":"#.utf8)
        appendData(to: &out)
        out.append(UInt8(ascii: "}"))
    }
}

/// Where run records and their events are kept (the JSONL file of the data dir, or later a
/// database). Every run, `/run` ones included, has a record.
///
/// Run ids must be valid ids (`Identifier.isValidID`): a write with another id throws
/// `.invalidID`; a read of one finds nothing.
public protocol RunStore: Sendable {
    /// Records a new run (`queued` or `running`). When `durable`, it is on disk before this
    /// returns (`POST /runs` answers 202 only after); otherwise it is only queued for the
    /// next batch, but always written before the finish of the same run. Readable at once.
    func create(_ record: RunRecord, durable: Bool) async throws(StoreError)
    /// Records the final state (a finished status) and every event of a run; durable
    /// before it returns. Many concurrent finishes share one fsync.
    func finish(_ record: RunRecord, events: [RunEvent]) async throws(StoreError)
    /// The run's record; nil when unknown (or pruned).
    func record(_ runID: String) async throws(StoreError) -> RunRecord?
    /// Events of a FINISHED run with id > `after`, in order; nil if the run is unknown or not finished.
    func events(_ runID: String, after: Int) async throws(StoreError) -> [RunEvent]?
    /// Drops finished runs that finished before `cutoff` (durably); returns how many.
    func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int
    /// Returns once every write accepted so far (non-durable creates included) is on disk.
    func flush() async throws(StoreError)
}

/// ISO 8601 UTC times with milliseconds (`2026-11-25T12:00:00.123Z`), by hand: no
/// formatter objects, nothing shared between threads.
public enum ISOTime {
    static func milliseconds(_ date: Date) -> Int64 {
        let ms = (date.timeIntervalSince1970 * 1000).rounded()
        guard ms.isFinite else { return 0 }
        return Int64(max(min(ms, 2.5e14), -6.2e13))  // years 0000...9999
    }

    static func date(milliseconds ms: Int64) -> Date {
        Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    static func string(milliseconds ms: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(milliseconds: ms, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func string(_ date: Date) -> String { string(milliseconds: milliseconds(date)) }

    /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (no quotes).
    static func append(milliseconds ms: Int64, to out: inout [UInt8]) {
        let (days, msOfDay) = floorDivide(ms, 86_400_000)
        let (y, m, d) = civil(fromDays: days)
        func digits(_ v: Int64, _ width: Int) {
            var div: Int64 = 1
            for _ in 1..<width { div *= 10 }
            var v = v
            while div > 0 {
                out.append(UInt8(ascii: "0") + UInt8((v / div) % 10))
                v %= div
                div /= 10
            }
        }
        digits(y, 4)
        out.append(UInt8(ascii: "-"))
        digits(m, 2)
        out.append(UInt8(ascii: "-"))
        digits(d, 2)
        out.append(UInt8(ascii: "T"))
        digits(msOfDay / 3_600_000, 2)
        out.append(UInt8(ascii: ":"))
        digits(msOfDay / 60_000 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(msOfDay / 1000 % 60, 2)
        out.append(UInt8(ascii: "."))
        digits(msOfDay % 1000, 3)
        out.append(UInt8(ascii: "Z"))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (fraction of any length, rounded to the
    /// millisecond; `z` and `+00:00` accepted for `Z`).
    static func milliseconds(parsing s: String) -> Int64? {
        let b = Array(s.utf8)
        guard b.count >= 20 else { return nil }
        func number(_ from: Int, _ count: Int) -> Int64? {
            var v: Int64 = 0
            for k in from..<(from + count) {
                let c = b[k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        guard let y = number(0, 4), b[4] == UInt8(ascii: "-"), let mo = number(5, 2), b[7] == UInt8(ascii: "-"),
            let d = number(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            let h = number(11, 2), b[13] == UInt8(ascii: ":"), let mi = number(14, 2), b[16] == UInt8(ascii: ":"),
            let sec = number(17, 2),
            (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h < 24, mi < 60, sec < 60
        else { return nil }
        var k = 19
        var fraction: Double = 0
        if k < b.count, b[k] == UInt8(ascii: ".") {
            k += 1
            var scale = 0.1
            let start = k
            while k < b.count, b[k] >= 0x30, b[k] <= 0x39 {
                fraction += Double(b[k] - 0x30) * scale
                scale /= 10
                k += 1
            }
            guard k > start else { return nil }
        }
        let rest = b[k...]
        guard rest.elementsEqual("Z".utf8) || rest.elementsEqual("z".utf8) || rest.elementsEqual("+00:00".utf8) else {
            return nil
        }
        let days = days(fromCivil: y, mo, d)
        return days * 86_400_000 + ((h * 60 + mi) * 60 + sec) * 1000 + Int64((fraction * 1000).rounded())
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b
        var r = a % b
        if r < 0 {
            q -= 1
            r += b
        }
        return (q, r)
    }

    private static func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Howard Hinnant's `civil_from_days`.
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// Howard Hinnant's `days_from_civil`.
    private static func days(fromCivil year: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
