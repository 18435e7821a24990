import FlowdSync

/// A run's shared store: one value behind a lock, owned by one run.
///
/// Nodes reach it through `withLock`, which holds the lock only for the
/// closure; never await inside it (the closure is synchronous by design).
public final class SharedStore<Value: Sendable>: Sendable {
    private let state: Locked<Value>

    public init(_ value: Value) {
        state = Locked(value)
    }

    /// Reads or changes the value atomically.
    public func withLock<Result: Sendable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try state.withLock { value in try body(&value) }
    }

    /// A copy of the current value.
    public var value: Value {
        state.withLock { $0 }
    }
}
