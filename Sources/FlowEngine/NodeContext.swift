/// What a node method learns about the step it serves.
///
/// `attempt` is local to one call (1 for the first attempt of `exec`), never
/// stored in the node, so parallel items cannot see each other's retries.
public struct NodeContext: Sendable {
    /// The flow's params for this step.
    public var params: Params
    /// The attempt of `exec` or `execFallback` being made, starting at 1; 0 in `prep` and `post`.
    public var attempt: Int

    public init(params: Params, attempt: Int = 0) {
        self.params = params
        self.attempt = attempt
    }
}
