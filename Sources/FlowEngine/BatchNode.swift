/// A node whose `prep` returns items that go through `exec` (and its retries) one by one.
///
/// With `isParallel` the items run concurrently, each in its own child task;
/// results keep the input order and the first error cancels the others and
/// propagates (PocketFlow's `AsyncParallelBatchNode`).
public protocol BatchNode<Shared>: Runnable {
    associatedtype Item: Sendable
    associatedtype ItemResult: Sendable

    /// Attempts of `exec` per item; 1 (the default) means no retry.
    var maxRetries: Int { get }
    /// Pause between two attempts for one item.
    var wait: Duration { get }
    /// Whether items run concurrently; `false` by default.
    var isParallel: Bool { get }

    func prep(_ shared: Shared, context: NodeContext) async throws -> [Item]
    func exec(_ item: Item, context: NodeContext) async throws -> ItemResult
    func execFallback(_ item: Item, error: any Error, context: NodeContext) async throws -> ItemResult
    func post(_ shared: Shared, items: [Item], results: [ItemResult], context: NodeContext) async throws -> Action?
}

extension BatchNode {
    public var maxRetries: Int { 1 }
    public var wait: Duration { .zero }
    public var isParallel: Bool { false }

    public func execFallback(_ item: Item, error: any Error, context: NodeContext) async throws -> ItemResult {
        throw error
    }

    public func post(_ shared: Shared, items: [Item], results: [ItemResult], context: NodeContext) async throws -> Action? {
        nil
    }

    public func run(_ shared: Shared, params: Params, observer: (any StepObserver)?) async throws -> Action? {
        let context = NodeContext(params: params)
        let items = try await prep(shared, context: context)
        let results = isParallel
            ? try await execConcurrently(items, params: params)
            : try await execInOrder(items, params: params)
        return try await post(shared, items: items, results: results, context: context)
    }

    private func execItem(_ item: Item, params: Params) async throws -> ItemResult {
        try await withRetries(
            maxRetries: maxRetries, wait: wait,
            attempt: { attempt in try await exec(item, context: NodeContext(params: params, attempt: attempt)) },
            fallback: { error, attempt in
                try await execFallback(item, error: error, context: NodeContext(params: params, attempt: attempt))
            })
    }

    private func execInOrder(_ items: [Item], params: Params) async throws -> [ItemResult] {
        var results: [ItemResult] = []
        results.reserveCapacity(items.count)
        for item in items {
            results.append(try await execItem(item, params: params))
        }
        return results
    }

    private func execConcurrently(_ items: [Item], params: Params) async throws -> [ItemResult] {
        try await withThrowingTaskGroup(of: (Int, ItemResult).self) { group in
            for (index, item) in items.enumerated() {
                group.addTask { (index, try await execItem(item, params: params)) }
            }
            var slots = [ItemResult?](repeating: nil, count: items.count)
            for try await (index, result) in group {
                slots[index] = result
            }
            return slots.map { $0! }
        }
    }
}
