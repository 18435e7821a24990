import FlowdJSON
import Foundation

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

extension RunEvent {
    /// True for `done`, `error` and `cancelled`: nothing follows it.
    public var isTerminal: Bool { RunEventName.terminal.contains(name) }

    /// The `error` event that ends a run that failed with `code` (the status its `/run`
    /// answered) and `detail`.
    public static func failure(id: Int, runID: String, code: Int, detail: String) -> RunEvent {
        RunEvent(id: id, name: RunEventName.error, data: ["run_id": .string(runID), "status": .int(Int64(code)), "detail": .string(detail)])
    }
}
