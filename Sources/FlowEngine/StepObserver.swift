/// Sees every step of a flow: one `stepStarted`, then `stepCompleted` or `stepFailed`.
public protocol StepObserver: Sendable {
    func stepStarted(_ name: String) async
    func stepCompleted(_ name: String, duration: Duration) async
    /// The step threw `error` (after its retries and fallback), cancellation included.
    func stepFailed(_ name: String, duration: Duration, error: any Error) async
}
