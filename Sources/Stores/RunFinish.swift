import Foundation

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
