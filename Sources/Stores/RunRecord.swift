import FlowdJSON
import Foundation

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
    /// How many times a process took it up again after another left it unfinished.
    public var resumed: Int = 0
    /// LLM tokens its attempts reported (failed ones too); zeros when none did.
    public var usage = RunUsage()
    /// The run this one retries from its failed step (`POST /runs/{id}/retry`).
    public var retryOf: String?
    /// The request's `input`: kept (not shown) so that the run can be resumed or retried.
    public var input: String = ""
    /// The `Idempotency-Key` the run was started with, and the route it came to.
    public var idempotency: IdempotencyKey?
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
        createdAt: Date, finishedAt: Date? = nil, input: String = "", retryOf: String? = nil,
        idempotency: IdempotencyKey? = nil
    ) {
        self.input = input
        self.retryOf = retryOf
        self.idempotency = idempotency
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

    /// `{"run_id","flow","story_id","status","result","pending_docs","error","created_at","finished_at","resumed","usage"}`,
    /// and `"retry_of"` on a retry, in that order, `null` where absent, times ISO 8601 UTC
    /// with milliseconds: what `GET /runs/{id}` answers.
    public var json: JSONValue {
        var o = apiObject
        if let retryOf { o["retry_of"] = .string(retryOf) }
        return .object(o)
    }

    /// `json` and what the stores keep besides: `input`, and the idempotency key with its route.
    public var storedJSON: JSONValue {
        var o = apiObject
        if let retryOf { o["retry_of"] = .string(retryOf) }
        o["input"] = .string(input)
        if let idempotency {
            o["idempotency_key"] = .string(idempotency.key)
            o["idempotency_route"] = .string(idempotency.route)
        }
        return .object(o)
    }

    private var apiObject: JSONObject {
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
        o["resumed"] = .int(Int64(resumed))
        o["usage"] = usage.json
        return o
    }

    /// Reads the JSON form back (`storedJSON`, or `json`); nil when a member is missing or of
    /// the wrong type, the status is unknown or a time is not ISO 8601. `result`,
    /// `pending_docs`, `error`, `finished_at`, `retry_of` and the idempotency key may be
    /// absent (read as null), `resumed` (0) and `input` ("") too.
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
            let finished = optionalString("finished_at"), let retryOf = optionalString("retry_of"),
            let input = optionalString("input"), let key = optionalString("idempotency_key"),
            let route = optionalString("idempotency_route")
        else { return nil }
        switch o["resumed"] {
        case nil: self.resumed = 0
        case .int(let n)?: self.resumed = Int(clamping: n)
        default: return nil
        }
        switch o["usage"] {
        case nil: self.usage = RunUsage()
        case let value?:
            guard let usage = RunUsage(json: value) else { return nil }
            self.usage = usage
        }
        self.retryOf = retryOf
        self.input = input ?? ""
        if let key, let route { self.idempotency = IdempotencyKey(key: key, route: route) }
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

    /// Appends the same JSON as `storedJSON`, without building it.
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
        out.append(contentsOf: #","resumed":"#.utf8)
        JSONValue.appendInteger(Int64(resumed), to: &out)
        out.append(contentsOf: #","usage":"#.utf8)
        usage.appendJSON(to: &out)
        if let retryOf {
            out.append(contentsOf: #","retry_of":"#.utf8)
            JSONValue.appendString(retryOf, to: &out)
        }
        out.append(contentsOf: #","input":"#.utf8)
        JSONValue.appendString(input, to: &out)
        if let idempotency {
            out.append(contentsOf: #","idempotency_key":"#.utf8)
            JSONValue.appendString(idempotency.key, to: &out)
            out.append(contentsOf: #","idempotency_route":"#.utf8)
            JSONValue.appendString(idempotency.route, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Whether `other` (a new request with the same idempotency key) asks for the same run:
    /// the same route, flow, input and story, and for a retry the same original.
    public func isSameRequest(as other: RunRecord) -> Bool {
        idempotency?.route == other.idempotency?.route && flow == other.flow && input == other.input
            && storyID == other.storyID && retryOf == other.retryOf
    }
}
