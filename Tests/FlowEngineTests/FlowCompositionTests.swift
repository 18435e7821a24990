import FlowEngine
import Testing

@Test func aFlowRunsAsANodeOfAnotherFlow() async throws {
    var inner = Flow<NumberStore>(name: "inner")
    inner.add("set", SetNumber(number: 5))
    inner.add("add", AddNumber(number: 10))
    inner.add("multiply", MultiplyNumber(number: 2))
    inner.connect("set", to: "add")
    inner.connect("add", to: "multiply")
    var outer = Flow<NumberStore>(name: "outer")
    outer.add("inner", inner)
    let store = NumberStore(Numbers())
    _ = try await outer.run(store)
    #expect(store.value.current == 30)
}

@Test func flowsNestTwoLevelsDeep() async throws {
    var inner = Flow<NumberStore>()
    inner.add("set", SetNumber(number: 5))
    inner.add("add", AddNumber(number: 3))
    inner.connect("set", to: "add")
    var middle = Flow<NumberStore>()
    middle.add("inner", inner)
    middle.add("multiply", MultiplyNumber(number: 4))
    middle.connect("inner", to: "multiply")
    var outer = Flow<NumberStore>()
    outer.add("middle", middle)
    let store = NumberStore(Numbers())
    _ = try await outer.run(store)
    #expect(store.value.current == 32)
}

@Test func flowsChainOneAfterAnother() async throws {
    var first = Flow<NumberStore>()
    first.add("set", SetNumber(number: 10))
    first.add("add", AddNumber(number: 10))
    first.connect("set", to: "add")
    var second = Flow<NumberStore>()
    second.add("multiply", MultiplyNumber(number: 2))
    var outer = Flow<NumberStore>()
    outer.add("first", first)
    outer.add("second", second)
    outer.connect("first", to: "second")
    let store = NumberStore(Numbers())
    _ = try await outer.run(store)
    #expect(store.value.current == 40)
}

@Test func anInnerFlowsLastActionSteersTheOuterFlow() async throws {
    var inner = Flow<NumberStore>()
    inner.add("set", SetNumber(number: 100))
    inner.add("signal", Signal(signal: "inner_done"))
    inner.connect("set", to: "signal")
    struct Path: Node {
        typealias Shared = NumberStore
        let path: String
        func prep(_ shared: NumberStore, context: NodeContext) async throws {
            shared.withLock { $0.log.append(path) }
        }
    }
    var outer = Flow<NumberStore>()
    outer.add("inner", inner)
    outer.add("a", Path(path: "A"))
    outer.add("b", Path(path: "B"))
    outer.connect("inner", on: "other_action", to: "a")
    outer.connect("inner", on: "inner_done", to: "b")
    let store = NumberStore(Numbers())
    #expect(try await outer.run(store) == nil)
    #expect(store.value.current == 100)
    #expect(store.value.log == ["B"])
}

@Test func anInnerFlowReportsItsStepsToTheSameObserver() async throws {
    var inner = Flow<NumberStore>()
    inner.add("set", SetNumber(number: 1))
    var outer = Flow<NumberStore>()
    outer.add("inner", inner)
    let recorder = EventRecorder()
    _ = try await outer.run(NumberStore(Numbers()), observer: recorder)
    #expect(recorder.all == ["started inner", "started set", "completed set", "completed inner"])
}
