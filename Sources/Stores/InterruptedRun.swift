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
