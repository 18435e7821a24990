/// An action returned by `post`; `nil` means "default", as in PocketFlow.
public typealias Action = String

/// Parameters a flow hands to each node it runs (PocketFlow's `params`).
public typealias Params = [String: String]

/// Anything a flow can run as one step: a node, a batch node, a flow, a batch flow.
///
/// A runnable holds no per-run mutable state: everything a run changes lives in
/// the `Shared` value it is given, so one runnable may serve many runs at once.
public protocol Runnable<Shared>: Sendable {
    /// The run's shared store, usually a reference type owned by one run.
    associatedtype Shared: Sendable

    /// Runs the step once and returns the action that picks the successor.
    /// Nested flows report their own steps to `observer`.
    func run(_ shared: Shared, params: Params, observer: (any StepObserver)?) async throws -> Action?
}

extension Runnable {
    /// Runs the step on its own, without params or observer.
    public func run(_ shared: Shared) async throws -> Action? {
        try await run(shared, params: [:], observer: nil)
    }
}
