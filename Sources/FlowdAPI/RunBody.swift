import FlowdHTTP

/// The `/run` body for an outcome, for `flowd run`.
public enum RunBody {
    /// The JSON body `/run` would answer, and the exit status of `flowd run` (0 or 1).
    public static func render(_ outcome: RunOutcome, runID: String) -> (body: [UInt8], exitStatus: Int32) {
        do {
            let response = try RunRoutes.answer(outcome, runID: runID, draining: false)
            guard case .bytes(let body) = response.body else { return ([], 0) }
            return (body, 0)
        } catch {
            return (error.body, 1)
        }
    }
}
