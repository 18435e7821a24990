/// Runs a flow once per parameter set that `batchParams` returns (PocketFlow's `BatchFlow`).
///
/// Each run gets the caller's params merged with its own set. With `isParallel`
/// the runs go concurrently (`AsyncParallelBatchFlow`): they share `Shared`, so
/// it must tolerate concurrent use. Returns the action of `post` (default: `nil`).
public struct BatchFlow<Shared: Sendable>: Runnable {
    public var flow: Flow<Shared>
    public var isParallel: Bool
    public var batchParams: @Sendable (Shared, Params) async throws -> [Params]
    public var post: @Sendable (Shared, [Params]) async throws -> Action?

    public init(
        flow: Flow<Shared>,
        isParallel: Bool = false,
        batchParams: @escaping @Sendable (Shared, Params) async throws -> [Params],
        post: @escaping @Sendable (Shared, [Params]) async throws -> Action? = { _, _ in nil }
    ) {
        self.flow = flow
        self.isParallel = isParallel
        self.batchParams = batchParams
        self.post = post
    }

    public func run(_ shared: Shared, params: Params, observer: (any StepObserver)?) async throws -> Action? {
        let batches = try await batchParams(shared, params)
        let flow = self.flow
        if isParallel {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for batch in batches {
                    let merged = params.merging(batch) { _, own in own }
                    group.addTask { _ = try await flow.run(shared, params: merged, observer: observer) }
                }
                try await group.waitForAll()
            }
        } else {
            for batch in batches {
                _ = try await flow.run(shared, params: params.merging(batch) { _, own in own }, observer: observer)
            }
        }
        return try await post(shared, batches)
    }
}
