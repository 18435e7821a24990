import Stores

/// Where a run's completed steps go, and which of them must be durable before the next
/// agent starts (SPEC "Durable runs": an llm agent's, or one of 100 ms or more).
struct RunJournal: Sendable {
    /// Writes `steps` (numbered from `first`) and `events` durably; false when it could not.
    let write: @Sendable (_ record: RunRecord, _ steps: [RunStep], _ first: Int, _ events: [RunEvent]) async -> Bool
    let mustBeDurable: @Sendable (_ agent: String, _ duration: Duration) -> Bool
}
