import FlowEngine
import Synchronization
import Testing

/// Fails its first `failures` attempts; its fallback answers "fallback".
struct FlakyNode: Node {
    typealias Shared = SharedStore<[String]>
    let failures: Int
    var maxRetries: Int
    var wait: Duration = .zero
    var hasFallback = true

    func exec(_ prepResult: Void, context: NodeContext) async throws -> String {
        if context.attempt <= failures { throw TestFailure(message: "attempt \(context.attempt)") }
        return "success after \(context.attempt)"
    }

    func execFallback(_ prepResult: Void, error: any Error, context: NodeContext) async throws -> String {
        guard hasFallback else { throw error }
        return "fallback after \(context.attempt)"
    }

    func post(_ shared: Shared, prepResult: Void, execResult: String, context: NodeContext) async throws -> Action? {
        shared.withLock { $0.append(execResult) }
        return nil
    }
}

@Test func aSuccessfulExecNeedsOneAttempt() async throws {
    let store = SharedStore<[String]>([])
    _ = try await FlakyNode(failures: 0, maxRetries: 3).run(store)
    #expect(store.value == ["success after 1"])
}

@Test func theFallbackRunsAfterTheLastFailedAttempt() async throws {
    let store = SharedStore<[String]>([])
    _ = try await FlakyNode(failures: 5, maxRetries: 2).run(store)
    #expect(store.value == ["fallback after 2"])
}

@Test func retriesRecoverBeforeTheFallback() async throws {
    let store = SharedStore<[String]>([])
    _ = try await FlakyNode(failures: 2, maxRetries: 3).run(store)
    #expect(store.value == ["success after 3"])
}

@Test func withoutAFallbackTheLastErrorPropagates() async throws {
    let node = FlakyNode(failures: 5, maxRetries: 3, hasFallback: false)
    await #expect(throws: TestFailure(message: "attempt 3")) {
        try await node.run(SharedStore<[String]>([]))
    }
}

@Test func theFallbackResultFlowsOnToTheNextNode() async throws {
    struct Collect: Node {
        typealias Shared = SharedStore<[String]>
        func prep(_ shared: Shared, context: NodeContext) async throws -> [String] { shared.value }
        func post(_ shared: Shared, prepResult: [String], execResult: Void, context: NodeContext) async throws -> Action? {
            shared.withLock { $0.append("seen \(prepResult.count)") }
            return nil
        }
    }
    var flow = Flow<SharedStore<[String]>>()
    flow.add("flaky", FlakyNode(failures: 1, maxRetries: 1))
    flow.add("collect", Collect())
    flow.connect("flaky", to: "collect")
    let store = SharedStore<[String]>([])
    _ = try await flow.run(store)
    #expect(store.value == ["fallback after 1", "seen 1"])
}

@Test func waitPausesBetweenAttemptsButNotAfterTheLast() async throws {
    /// Notes when each attempt and the fallback ran.
    struct TimedNode: Node {
        typealias Shared = SharedStore<[String]>
        let times: SharedStore<[ContinuousClock.Instant]>
        var maxRetries: Int { 3 }
        var wait: Duration { .milliseconds(500) }

        func exec(_ prepResult: Void, context: NodeContext) async throws -> String {
            times.withLock { $0.append(.now) }
            throw TestFailure(message: "attempt \(context.attempt)")
        }

        func execFallback(_ prepResult: Void, error: any Error, context: NodeContext) async throws -> String {
            times.withLock { $0.append(.now) }
            return "fallback"
        }
    }
    let times = SharedStore<[ContinuousClock.Instant]>([])
    _ = try await TimedNode(times: times).run(SharedStore<[String]>([]))
    let instants = times.value
    #expect(instants.count == 4)  // three attempts, then the fallback
    guard instants.count == 4 else { return }
    #expect(instants[1] - instants[0] >= .milliseconds(500))
    #expect(instants[2] - instants[1] >= .milliseconds(500))
    #expect(instants[3] - instants[2] < .milliseconds(250), "no wait after the last attempt")
}

@Test func cancellationIsNeitherRetriedNorHandedToTheFallback() async throws {
    struct Sleeper: Node {
        typealias Shared = SharedStore<[String]>
        let attempts: SharedStore<Int>
        var maxRetries: Int { 5 }
        func exec(_ prepResult: Void, context: NodeContext) async throws -> String {
            attempts.withLock { $0 += 1 }
            try await Task.sleep(for: .seconds(30))
            return "late"
        }
        func execFallback(_ prepResult: Void, error: any Error, context: NodeContext) async throws -> String { "fallback" }
    }
    let node = Sleeper(attempts: SharedStore(0))
    let task = Task { try await node.run(SharedStore<[String]>([])) }
    // Cancelled during its first attempt, once that has begun.
    while node.attempts.withLock({ $0 }) == 0 { await Task.yield() }
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(node.attempts.withLock { $0 } == 1)
}
