import FlowEngine
import Testing

@Test func singleNodeFlowRunsTheStartNodeAndReturnsItsAction() async throws {
    let store = NumberStore(Numbers())
    var flow = Flow<NumberStore>()
    flow.add("n1", SetNumber(number: 5))
    let action = try await flow.run(store)
    #expect(store.value.current == 5)
    #expect(action == nil)
}

@Test func defaultTransitionsRunASequence() async throws {
    let store = NumberStore(Numbers())
    var flow = Flow<NumberStore>()
    flow.add("set", SetNumber(number: 5))
    flow.add("add", AddNumber(number: 3))
    flow.add("multiply", MultiplyNumber(number: 2))
    flow.connect("set", to: "add")
    flow.connect("add", to: "multiply")
    #expect(try await flow.run(store) == nil)
    #expect(store.value.current == 16)
}

private func branchingFlow() -> Flow<NumberStore> {
    var flow = Flow<NumberStore>()
    flow.add("check", CheckPositive())
    flow.add("positive", AddNumber(number: 10))
    flow.add("negative", AddNumber(number: -20))
    flow.connect("check", on: "positive", to: "positive")
    flow.connect("check", on: "negative", to: "negative")
    return flow
}

@Test func branchingFollowsThePositiveAction() async throws {
    let store = NumberStore(Numbers(current: 5))
    #expect(try await branchingFlow().run(store) == nil)
    #expect(store.value.current == 15)
}

@Test func branchingFollowsTheNegativeAction() async throws {
    let store = NumberStore(Numbers(current: -5))
    #expect(try await branchingFlow().run(store) == nil)
    #expect(store.value.current == -25)
}

@Test func aLoopRunsUntilTheConditionChangesAndEndsWithItsSignal() async throws {
    let store = NumberStore(Numbers())
    var flow = Flow<NumberStore>()
    flow.add("set", SetNumber(number: 10))
    flow.add("check", CheckPositive())
    flow.add("subtract", AddNumber(number: -3))
    flow.add("end", Signal(signal: "cycle_done"))
    flow.connect("set", to: "check")
    flow.connect("check", on: "positive", to: "subtract")
    flow.connect("check", on: "negative", to: "end")
    flow.connect("subtract", to: "check")
    #expect(try await flow.run(store) == "cycle_done")
    #expect(store.value.current == -2)
}

@Test func anUnknownActionEndsTheFlowWithPocketFlowsWarning() async throws {
    let capture = LogCapture()
    var flow = Flow<NumberStore>(logger: capture.logger)
    flow.add("signal", Signal(signal: "nowhere"))
    flow.add("next", AddNumber(number: 1))
    flow.connect("signal", on: "somewhere", to: "next")
    flow.connect("signal", on: "elsewhere", to: "next")
    let store = NumberStore(Numbers())
    #expect(try await flow.run(store) == "nowhere")
    #expect(store.value.current == 0)
    #expect(capture.all == ["warning: Flow ends: 'nowhere' not found in ['somewhere', 'elsewhere']"])
}

@Test func aStepWithoutSuccessorsEndsTheFlowSilently() async throws {
    let capture = LogCapture()
    var flow = Flow<NumberStore>(logger: capture.logger)
    flow.add("signal", Signal(signal: "done"))
    #expect(try await flow.run(NumberStore(Numbers())) == "done")
    #expect(capture.all.isEmpty)
}

@Test func maxStepsStopsALoopNamingTheStepThatWouldHaveStarted() async throws {
    var flow = Flow<NumberStore>(maxSteps: 5)
    flow.add("a", AddNumber(number: 1))
    flow.add("b", AddNumber(number: 10))
    flow.connect("a", to: "b")
    flow.connect("b", to: "a")
    let store = NumberStore(Numbers())
    await #expect(throws: FlowError.maxStepsExceeded(step: "b", maxSteps: 5)) {
        try await flow.run(store)
    }
    #expect(store.value.current == 23)
    #expect(FlowError.maxStepsExceeded(step: "b", maxSteps: 5).description == "b: max_steps (5) exceeded")
}

@Test func theObserverSeesEveryStepStartAndEndInOrder() async throws {
    struct Boom: Node {
        typealias Shared = NumberStore
        func exec(_ prepResult: Void, context: NodeContext) async throws { throw TestFailure(message: "boom") }
    }
    var flow = Flow<NumberStore>()
    flow.add("set", SetNumber(number: 1))
    flow.add("boom", Boom())
    flow.connect("set", to: "boom")
    let recorder = EventRecorder()
    await #expect(throws: TestFailure(message: "boom")) {
        try await flow.run(NumberStore(Numbers()), observer: recorder)
    }
    #expect(recorder.all == ["started set", "completed set", "started boom", "failed boom"])
}

@Test func flowParamsReachEveryNodeAndCallerParamsWin() async throws {
    struct ParamReader: Node {
        typealias Shared = NumberStore
        func prep(_ shared: NumberStore, context: NodeContext) async throws {
            shared.withLock { $0.log.append("\(context.params["a"] ?? "-")\(context.params["b"] ?? "-")") }
        }
    }
    var flow = Flow<NumberStore>()
    flow.params = ["a": "1", "b": "2"]
    flow.add("one", ParamReader())
    flow.add("two", ParamReader())
    flow.connect("one", to: "two")
    let store = NumberStore(Numbers())
    _ = try await flow.run(store, params: ["b": "9"])
    #expect(store.value.log == ["19", "19"])
}

@Test func aCancelledRunStopsBeforeTheNextStep() async throws {
    struct Slow: Node {
        typealias Shared = NumberStore
        func exec(_ prepResult: Void, context: NodeContext) async throws {
            try await Task.sleep(for: .seconds(30))
        }
    }
    var flow = Flow<NumberStore>()
    flow.add("slow", Slow())
    flow.add("after", AddNumber(number: 1))
    flow.connect("slow", to: "after")
    let store = NumberStore(Numbers())
    let task = Task { try await flow.run(store) }
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(store.value.current == 0)
}

@Test func anExplicitEndStopsTheFlowWithoutAWarning() async throws {
    let capture = LogCapture()
    var flow = Flow<NumberStore>(logger: capture.logger)
    flow.add("signal", Signal(signal: "approve"))
    flow.add("next", AddNumber(number: 1))
    flow.connect("signal", on: "revise", to: "next")
    flow.end("signal", on: "approve")
    let store = NumberStore(Numbers())
    #expect(try await flow.run(store) == "approve")
    #expect(store.value.current == 0)
    #expect(capture.all.isEmpty)
}
