import FlowEngine
import Synchronization
import Testing

struct Doubler: BatchNode {
    typealias Shared = SharedStore<[String: [Int]]>
    var isParallel = false
    var delay: @Sendable (Int) -> Duration = { _ in .zero }
    var failOn: Int?
    var started: SharedStore<[Int]>? = nil

    func prep(_ shared: Shared, context: NodeContext) async throws -> [Int] {
        shared.value["input"] ?? []
    }

    func exec(_ item: Int, context: NodeContext) async throws -> Int {
        started?.withLock { $0.append(item) }
        let pause = delay(item)
        if pause > .zero { try await Task.sleep(for: pause) }
        if item == failOn { throw TestFailure(message: "item \(item)") }
        return item * 2
    }

    func post(_ shared: Shared, items: [Int], results: [Int], context: NodeContext) async throws -> Action? {
        shared.withLock { $0["output"] = results }
        return "processed"
    }
}

@Test func aBatchNodeRunsEveryItemThroughExecInOrder() async throws {
    let store = SharedStore<[String: [Int]]>(["input": [1, 2, 3, 4, 5]])
    #expect(try await Doubler().run(store) == "processed")
    #expect(store.value["output"] == [2, 4, 6, 8, 10])
}

@Test func aBatchNodeWithNoItemsPostsAnEmptyResult() async throws {
    let store = SharedStore<[String: [Int]]>(["input": []])
    _ = try await Doubler(isParallel: true).run(store)
    #expect(store.value["output"] == [])
}

@Test func batchItemsAreRetriedOneByOne() async throws {
    struct FlakyItems: BatchNode {
        typealias Shared = SharedStore<[String]>
        var maxRetries: Int { 3 }
        var isParallel: Bool
        func prep(_ shared: Shared, context: NodeContext) async throws -> [String] { ["a", "b", "c"] }
        func exec(_ item: String, context: NodeContext) async throws -> String {
            // Item "b" fails twice: its attempt count must be its own, even in parallel.
            if item == "b" && context.attempt < 3 { throw TestFailure(message: "b") }
            return "\(item)\(context.attempt)"
        }
        func post(_ shared: Shared, items: [String], results: [String], context: NodeContext) async throws -> Action? {
            shared.withLock { $0 = results }
            return nil
        }
    }
    for parallel in [false, true] {
        let store = SharedStore<[String]>([])
        _ = try await FlakyItems(isParallel: parallel).run(store)
        #expect(store.value == ["a1", "b3", "c1"])
    }
}

@Test func aParallelBatchNodeRunsItemsConcurrentlyAndKeepsInputOrder() async throws {
    let store = SharedStore<[String: [Int]]>(["input": Array(0..<10)])
    // Ten items of 3 s each: one after another would take 30 s; together about 3 s, and
    // well under 30 s however loaded the machine (the whole suite beside it, with two
    // busy loops, stretched 1 s items to 10 s).
    let node = Doubler(isParallel: true, delay: { _ in .seconds(3) })
    let clock = ContinuousClock()
    let started = clock.now
    _ = try await node.run(store)
    #expect(started.duration(to: clock.now) < .seconds(25))
    #expect(store.value["output"] == Array(0..<10).map { $0 * 2 })
}

@Test func parallelResultsFollowInputOrderWhenLaterItemsFinishFirst() async throws {
    let store = SharedStore<[String: [Int]]>(["input": [0, 1, 2, 3]])
    let node = Doubler(isParallel: true, delay: { .milliseconds(($0 % 2 == 0) ? 120 : 10) })
    _ = try await node.run(store)
    #expect(store.value["output"] == [0, 2, 4, 6])
}

@Test func aLargeParallelBatchCompletes() async throws {
    let store = SharedStore<[String: [Int]]>(["input": Array(0..<1000)])
    _ = try await Doubler(isParallel: true).run(store)
    #expect(store.value["output"] == Array(0..<1000).map { $0 * 2 })
}

@Test func theFirstErrorOfAParallelBatchPropagates() async throws {
    let store = SharedStore<[String: [Int]]>(["input": [1, 2, 3]])
    await #expect(throws: TestFailure(message: "item 2")) {
        try await Doubler(isParallel: true, failOn: 2).run(store)
    }
    #expect(store.value["output"] == nil)
}

/// A batch flow's store: input values by key, results by key.
struct Keyed: Sendable {
    var input: [String: Int] = [:]
    var results: [String: Int] = [:]
}

struct ProcessKey: Node {
    typealias Shared = SharedStore<Keyed>
    func prep(_ shared: Shared, context: NodeContext) async throws -> (String, Int) {
        let key = context.params["key"]!
        return (key, shared.value.input[key]!)
    }
    func exec(_ prepResult: (String, Int), context: NodeContext) async throws -> Int {
        if prepResult.1 < 0 { throw TestFailure(message: "key \(prepResult.0)") }
        return prepResult.1 * (Int(context.params["multiplier"] ?? "2") ?? 2)
    }
    func post(_ shared: Shared, prepResult: (String, Int), execResult: Int, context: NodeContext) async throws -> Action? {
        shared.withLock { $0.results[prepResult.0] = execResult }
        return nil
    }
}

private func keyedBatchFlow(parallel: Bool = false, multiplier: Bool = false) -> BatchFlow<SharedStore<Keyed>> {
    var flow = Flow<SharedStore<Keyed>>()
    flow.add("process", ProcessKey())
    return BatchFlow(flow: flow, isParallel: parallel) { shared, _ in
        shared.value.input.keys.sorted().enumerated().map { index, key in
            multiplier ? ["key": key, "multiplier": "\(index + 1)"] : ["key": key]
        }
    }
}

@Test func aBatchFlowRunsItsFlowOncePerParameterSet() async throws {
    for parallel in [false, true] {
        let store = SharedStore(Keyed(input: ["a": 1, "b": 2, "c": 3]))
        _ = try await keyedBatchFlow(parallel: parallel).run(store)
        #expect(store.value.results == ["a": 2, "b": 4, "c": 6])
    }
}

@Test func aBatchFlowWithNoParameterSetsRunsNothing() async throws {
    let store = SharedStore(Keyed())
    _ = try await keyedBatchFlow().run(store)
    #expect(store.value.results.isEmpty)
}

@Test func aBatchFlowPassesCustomParametersToItsNodes() async throws {
    let store = SharedStore(Keyed(input: ["a": 1, "b": 2, "c": 3]))
    _ = try await keyedBatchFlow(multiplier: true).run(store)
    #expect(store.value.results == ["a": 1, "b": 4, "c": 9])
}

@Test func anErrorInsideABatchFlowPropagates() async throws {
    for parallel in [false, true] {
        let store = SharedStore(Keyed(input: ["a": 1, "b": -2]))
        await #expect(throws: TestFailure(message: "key b")) {
            try await keyedBatchFlow(parallel: parallel).run(store)
        }
    }
}

@Test func batchFlowsNestWithGroupAndItemParameters() async throws {
    struct Groups: Sendable {
        var groups: [String: [Int]]
        var results: [String: [Int]] = [:]
    }
    struct Item: Node {
        typealias Shared = SharedStore<Groups>
        func prep(_ shared: Shared, context: NodeContext) async throws -> Int {
            shared.value.groups[context.params["group"]!]![Int(context.params["item"]!)!]
        }
        func exec(_ prepResult: Int, context: NodeContext) async throws -> Int { prepResult * 2 }
        func post(_ shared: Shared, prepResult: Int, execResult: Int, context: NodeContext) async throws -> Action? {
            shared.withLock { $0.results[context.params["group"]!, default: []].append(execResult) }
            return nil
        }
    }
    var itemFlow = Flow<SharedStore<Groups>>()
    itemFlow.add("item", Item())
    let inner = BatchFlow(flow: itemFlow) { shared, params in
        let count = shared.value.groups[params["group"]!]!.count
        return (0..<count).map { ["item": "\($0)"] }
    }
    var groupFlow = Flow<SharedStore<Groups>>()
    groupFlow.add("inner", inner)
    let outer = BatchFlow(flow: groupFlow) { shared, _ in
        shared.value.groups.keys.sorted().map { ["group": $0] }
    }
    let store = SharedStore(Groups(groups: ["g1": [1, 2], "g2": [3, 4]]))
    _ = try await outer.run(store)
    #expect(store.value.results == ["g1": [2, 4], "g2": [6, 8]])
}

@Test func twoRunsOfOneFlowShareNoState() async throws {
    var flow = Flow<NumberStore>()
    flow.add("add", AddNumber(number: 1))
    flow.add("check", CheckPositive())
    flow.connect("add", to: "check")
    flow.connect("check", on: "negative", to: "add")
    let shared = flow
    let stores = (0..<50).map { NumberStore(Numbers(current: -$0)) }
    try await withThrowingTaskGroup(of: Void.self) { group in
        for store in stores { group.addTask { _ = try await shared.run(store) } }
        try await group.waitForAll()
    }
    #expect(stores.allSatisfy { $0.value.current == ($0 === stores[0] ? 1 : 0) })
}
