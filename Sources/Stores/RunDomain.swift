import FlowdJSON
import Foundation

// The run domain: a run's status, record and events, the event vocabulary and the verdict
// on an interrupted run. Defined once here, for every store and the API; nothing of HTTP.

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

/// An `Idempotency-Key` header as kept with its run's record: the key, and the route the
/// request came to (`run`, `runs` or `retry`), for telling a replay from a reuse.
public struct IdempotencyKey: Sendable, Hashable {
    public var key: String
    public var route: String

    public init(key: String, route: String) {
        self.key = key
        self.route = route
    }
}

/// One completed step of a run, as its journal keeps it: the agent, the prompt it was
/// given (an llm agent's turn goes to its history), its output and the action it returned.
public struct RunStep: Sendable, Hashable {
    public var agent: String
    public var prompt: String
    public var output: String
    /// nil: the default action.
    public var action: String?
    /// What the provider reported over the step's attempts; nil when none did (not an llm
    /// step, or a step a retry took over: it counts for the run that ran it).
    public var usage: RunUsage?

    public init(agent: String, prompt: String, output: String, action: String?, usage: RunUsage? = nil) {
        self.agent = agent
        self.prompt = prompt
        self.output = output
        self.action = action
        self.usage = usage
    }

    /// `{"agent","prompt","output","action"}`, and `"usage"` when it has one.
    public var json: JSONValue {
        var o: JSONObject = ["agent": .string(agent), "prompt": .string(prompt), "output": .string(output),
                             "action": action.map(JSONValue.string) ?? .null]
        if let usage { o["usage"] = usage.json }
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard case .object(let o) = json, case .string(let agent)? = o["agent"], case .string(let prompt)? = o["prompt"],
            case .string(let output)? = o["output"]
        else { return nil }
        switch o["action"] {
        case nil, .null?: action = nil
        case .string(let a)?: action = a
        default: return nil
        }
        switch o["usage"] {
        case nil, .null?: usage = nil
        case let value?:
            guard let usage = RunUsage(json: value) else { return nil }
            self.usage = usage
        }
        self.agent = agent
        self.prompt = prompt
        self.output = output
    }

    /// Appends `json`, without building it.
    public func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"agent":"#.utf8)
        JSONValue.appendString(agent, to: &out)
        out.append(contentsOf: #","prompt":"#.utf8)
        JSONValue.appendString(prompt, to: &out)
        out.append(contentsOf: #","output":"#.utf8)
        JSONValue.appendString(output, to: &out)
        out.append(contentsOf: #","action":"#.utf8)
        if let action { JSONValue.appendString(action, to: &out) } else { out.append(contentsOf: "null".utf8) }
        if let usage {
            out.append(contentsOf: #","usage":"#.utf8)
            usage.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// LLM tokens a run or a step used, as providers report them:
/// `{"prompt_tokens": N, "completion_tokens": M}`.
public struct RunUsage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    public static func += (a: inout RunUsage, b: RunUsage) {
        a.promptTokens &+= b.promptTokens
        a.completionTokens &+= b.completionTokens
    }

    public var json: JSONValue {
        ["prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens))]
    }

    /// nil unless both counts are integers of at least 0.
    public init?(json: JSONValue) {
        guard case .int(let prompt)? = json["prompt_tokens"], case .int(let completion)? = json["completion_tokens"],
              prompt >= 0, completion >= 0 else { return nil }
        promptTokens = Int(clamping: prompt)
        completionTokens = Int(clamping: completion)
    }

    func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"prompt_tokens":"#.utf8)
        JSONValue.appendInteger(Int64(promptTokens), to: &out)
        out.append(contentsOf: #","completion_tokens":"#.utf8)
        JSONValue.appendInteger(Int64(completionTokens), to: &out)
        out.append(UInt8(ascii: "}"))
    }
}

/// A run that a process left queued or running, as a backend hands it over to be resumed:
/// its record (`resumed` already counting this time), its journal and its stored events.
public struct InterruptedRun: Sendable {
    public var record: RunRecord
    public var steps: [RunStep]
    public var events: [RunEvent]

    public init(record: RunRecord, steps: [RunStep], events: [RunEvent]) {
        self.record = record
        self.steps = steps
        self.events = events
    }
}

/// What to do with the runs an earlier process left unfinished (`--on-restart`).
public enum RestartPolicy: String, Sendable, CaseIterable {
    /// Go on from the step after the last journaled one.
    case resume
    /// End them `failed` (`RunFinish.interrupted`).
    case fail
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

    /// `event: progress` `resumed`: the run goes on after a process left it unfinished, with
    /// `agent` (nil when no agent is left to run).
    public static func resumed(id: Int, runID: String, agent: String?, at time: Date) -> RunEvent {
        RunEvent(id: id, name: "progress", data: [
            "run_id": .string(runID), "agent": agent.map(JSONValue.string) ?? .null, "status": "resumed",
            "timestamp": .string(ISOTime.string(milliseconds: ISOTime.milliseconds(time))),
        ])
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


/// The events a run emits, by name (the SSE `event:`): `progress` and `result` while it
/// goes, then exactly one terminal event, `done`, `error` or `cancelled`, last.
public enum RunEventName {
    public static let progress = "progress"
    public static let result = "result"
    /// The run succeeded, or ended with documents pending: `{"result","pending_docs","run_id"}`.
    public static let done = "done"
    /// The run failed: `{"run_id","status","detail"}`, `status` being the code its `/run` answered.
    public static let error = "error"
    public static let cancelled = "cancelled"

    /// The names that end a run's events.
    public static let terminal: Set<String> = [done, error, cancelled]
}

extension RunEvent {
    /// True for `done`, `error` and `cancelled`: nothing follows it.
    public var isTerminal: Bool { RunEventName.terminal.contains(name) }

    /// The `error` event that ends a run that failed with `code` (the status its `/run`
    /// answered) and `detail`.
    public static func failure(id: Int, runID: String, code: Int, detail: String) -> RunEvent {
        RunEvent(id: id, name: RunEventName.error, data: ["run_id": .string(runID), "status": .int(Int64(code)), "detail": .string(detail)])
    }
}

/// A run's end as stored: its final record (a finished status, `finishedAt` set) and every
/// event, the terminal one last.
public struct RunFinish: Sendable, Hashable {
    public let record: RunRecord
    public let events: [RunEvent]
    /// The run's journal, kept with a failed or cancelled run for a retry (empty otherwise).
    public let steps: [RunStep]

    public init(record: RunRecord, events: [RunEvent], steps: [RunStep] = []) {
        self.record = record
        self.events = events
        self.steps = steps
    }
}

extension RunFinish {
    /// The code an interrupted run's `error` event gives: the one a failed `/run` answers.
    public static let failureCode = 500

    /// The verdict on a run its process left unfinished (a stop, a crash, a lost lease):
    /// `failed`, with the detail `flowd stopped while the run was <status>` (and `why`, when
    /// given), finished `at`, and one `error` event after its `lastEventID` events.
    public static func interrupted(_ record: RunRecord, events: [RunEvent] = [], lastEventID: Int? = nil,
                                   steps: [RunStep] = [], at time: Date, why: String? = nil) -> RunFinish {
        var detail = "flowd stopped while the run was \(record.status.rawValue)"
        if let why { detail += " (\(why))" }
        var failed = record
        failed.status = .failed
        failed.error = detail
        failed.result = nil
        failed.pendingDocs = nil
        failed.finishedAt = time
        let event = RunEvent.failure(id: (lastEventID ?? events.count) + 1, runID: record.runID, code: failureCode, detail: detail)
        return RunFinish(record: failed, events: events + [event], steps: steps)
    }
}
