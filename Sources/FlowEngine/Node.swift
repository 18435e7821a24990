/// A PocketFlow node: `prep(shared) → exec(prepResult) → post(shared, prepResult, execResult) → action`.
///
/// Only `exec` is retried (`maxRetries` attempts in total, `wait` between them);
/// after the last failure `execFallback` runs and its value becomes the exec
/// result (by default it rethrows). A node is a `Sendable` value with no per-run
/// state: what a run changes goes to `Shared`.
public protocol Node<Shared>: Runnable {
    associatedtype PrepResult: Sendable = Void
    associatedtype ExecResult: Sendable = Void

    /// Attempts of `exec` in total; 1 (the default) means no retry.
    var maxRetries: Int { get }
    /// Pause between two attempts of `exec`; none by default.
    var wait: Duration { get }

    func prep(_ shared: Shared, context: NodeContext) async throws -> PrepResult
    func exec(_ prepResult: PrepResult, context: NodeContext) async throws -> ExecResult
    func execFallback(_ prepResult: PrepResult, error: any Error, context: NodeContext) async throws -> ExecResult
    func post(_ shared: Shared, prepResult: PrepResult, execResult: ExecResult, context: NodeContext) async throws -> Action?
}

extension Node {
    public var maxRetries: Int { 1 }
    public var wait: Duration { .zero }

    public func execFallback(_ prepResult: PrepResult, error: any Error, context: NodeContext) async throws -> ExecResult {
        throw error
    }

    public func post(_ shared: Shared, prepResult: PrepResult, execResult: ExecResult, context: NodeContext) async throws -> Action? {
        nil
    }

    public func run(_ shared: Shared, params: Params, observer: (any StepObserver)?) async throws -> Action? {
        let context = NodeContext(params: params)
        let prepResult = try await prep(shared, context: context)
        let execResult = try await withRetries(
            maxRetries: maxRetries, wait: wait,
            attempt: { attempt in
                try await exec(prepResult, context: NodeContext(params: params, attempt: attempt))
            },
            fallback: { error, attempt in
                try await execFallback(prepResult, error: error, context: NodeContext(params: params, attempt: attempt))
            })
        return try await post(shared, prepResult: prepResult, execResult: execResult, context: context)
    }
}

extension Node where PrepResult == Void {
    public func prep(_ shared: Shared, context: NodeContext) async throws {}
}

extension Node where ExecResult == Void {
    public func exec(_ prepResult: PrepResult, context: NodeContext) async throws {}
}
