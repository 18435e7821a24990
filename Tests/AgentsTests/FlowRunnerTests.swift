@testable import Agents
import AsyncHTTPClient
import Foundation
import Logging
import Testing

private func runner(_ files: [String: String], llm: LLMConfiguration = LLMConfiguration()) throws -> (FlowRunner, AgentsFolder) {
    let folder = try AgentsFolder(files)
    let catalog = try folder.load()
    return (FlowRunner(catalog: catalog, httpClient: .shared, llm: llm, logger: Logger(label: "test")), folder)
}

private func run(_ runner: FlowRunner, _ flow: String = "default", input: FlowInput = FlowInput(input: "hello", storyID: "s1"),
                 observer: (any FlowRunObserver)? = nil) async throws(FlowRunError) -> FlowOutcome {
    try await runner.run(flow: runner.catalog.flow(named: flow)!, input: input, observer: observer)
}

@Test func theDefaultFlowRunsOfflineAndRemembersTheLastAnalysis() async throws {
    let catalog = try AgentCatalog.load(directory: shippedAgents, logger: Logger(label: "test"))
    let runner = FlowRunner(catalog: catalog, httpClient: .shared, llm: LLMConfiguration(), logger: Logger(label: "test"))
    let recorder = RunRecorder()
    let input = FlowInput(input: "a todo app", storyID: "s1", memory: ["analyst": AgentMemory(lastOutput: "earlier")])
    let outcome = try await run(runner, input: input, observer: recorder)
    #expect(outcome.steps.map(\.agent) == ["analyst", "summarizer"])
    #expect(outcome.steps[0].output == "Analysis of: a todo app\nStory: s1\nPrevious analysis: earlier\n")
    #expect(outcome.result == "Summary for story s1:\n" + outcome.steps[0].output + "\n")
    #expect(recorder.all == [
        "started analyst", "completed analyst: \(outcome.steps[0].output)",
        "started summarizer", "completed summarizer: \(outcome.result)",
    ])
}

@Test func theReviewLoopApprovesAndEnds() async throws {
    let catalog = try AgentCatalog.load(directory: shippedAgents, logger: Logger(label: "test"))
    let runner = FlowRunner(catalog: catalog, httpClient: .shared, llm: LLMConfiguration(), logger: Logger(label: "test"))
    let outcome = try await run(runner, "review", input: FlowInput(input: "a poem", storyID: "s1"))
    #expect(outcome.steps.map(\.agent) == ["writer", "reviewer"])
    #expect(outcome.result == "Review of: Draft for: a poem")
}

@Test func aLoopPastMaxStepsFailsNamingTheAgentThatWouldHaveStarted() async throws {
    let catalog = try AgentCatalog.load(directory: shippedAgents, logger: Logger(label: "test"))
    let runner = FlowRunner(catalog: catalog, httpClient: .shared, llm: LLMConfiguration(), logger: Logger(label: "test"))
    await #expect(throws: FlowRunError.agentFailed(agent: "writer", message: "max_steps (20) exceeded")) {
        try await run(runner, "review", input: FlowInput(input: "TODO", storyID: "s1"))
    }
}

@Test func aMockFailsItsFirstAttemptsAndRecoversWithRetries() async throws {
    let (runner, folder) = try runner([
        "flaky.yaml": "kind: mock\nfail_attempts: 2\nmax_retries: 3\noutput: fine\n",
        "flows.yaml": "default: [flaky]\n",
    ])
    defer { folder.remove() }
    #expect(try await run(runner).result == "fine")
}

@Test func aMockThatKeepsFailingFailsTheRunAfterItsLastAttempt() async throws {
    let (runner, folder) = try runner([
        "first.yaml": "kind: mock\noutput: one\n",
        "boom.yaml": "kind: mock\nfail: boom\nmax_retries: 2\n",
        "silent.yaml": "kind: mock\nfail_attempts: 1\n",
        "flows.yaml": "default: [first, boom]\nsilent: [silent]\n",
    ])
    defer { folder.remove() }
    let recorder = RunRecorder()
    await #expect(throws: FlowRunError.agentFailed(agent: "boom", message: "boom")) {
        try await run(runner, observer: recorder)
    }
    #expect(recorder.all == ["started first", "completed first: one", "started boom", "failed boom: boom"])
    await #expect(throws: FlowRunError.agentFailed(agent: "silent", message: "mock failure")) {
        try await run(runner, "silent")
    }
    #expect(FlowRunError.agentFailed(agent: "boom", message: "boom").description == "boom: boom")
}

@Test func aMockOutputsItsPromptOrNothing() async throws {
    let (runner, folder) = try runner([
        "echo.yaml": "kind: mock\nprompt: 'echo {{input}}'\n",
        "empty.yaml": "kind: mock\n",
        "flows.yaml": "echo: [echo]\nempty: [empty]\n",
    ])
    defer { folder.remove() }
    #expect(try await run(runner, "echo").result == "echo hello")
    #expect(try await run(runner, "empty").result == "")
}

@Test func anAttemptOverItsTimeoutFails() async throws {
    let (runner, folder) = try runner([
        "slow.yaml": "kind: mock\ndelay_ms: 5000\ntimeout: 0.1\n",
        "flows.yaml": "default: [slow]\n",
    ])
    defer { folder.remove() }
    await #expect(throws: FlowRunError.agentFailed(agent: "slow", message: "timed out after 0.1s")) {
        try await run(runner)
    }
}

@Test func anOutputOfAnAgentThatHasNotRunFailsTheRun() async throws {
    let (runner, folder) = try runner([
        "early.yaml": "kind: template\nprompt: '{{outputs.late}}'\n",
        "late.yaml": "kind: template\nprompt: x\n",
        "flows.yaml": "default: [early, late]\n",
    ])
    defer { folder.remove() }
    await #expect(throws: FlowRunError.agentFailed(
        agent: "early", message: "{{outputs.late}}: agent 'late' has not run yet in this run")) {
        try await run(runner)
    }
}

@Test func routesPickTheActionAndAnUnmatchedActionEndsASequence() async throws {
    let (runner, folder) = try runner([
        "a.yaml": "kind: template\nprompt: '{{input}}'\nroutes: [{match: 'stop', action: halt}]\n",
        "b.yaml": "kind: template\nprompt: b\n",
        "flows.yaml": "default: [a, b]\n",
    ])
    defer { folder.remove() }
    #expect(try await run(runner, input: FlowInput(input: "go", storyID: "s")).result == "b")
    #expect(try await run(runner, input: FlowInput(input: "please stop", storyID: "s")).result == "please stop")
}

@Test func cancellingARunStopsItPromptlyWithoutAFailureEvent() async throws {
    let (runner, folder) = try runner([
        "slow.yaml": "kind: mock\ndelay_ms: 30000\n",
        "flows.yaml": "default: [slow]\n",
    ])
    defer { folder.remove() }
    let recorder = RunRecorder()
    let task = Task { () async throws(FlowRunError) -> FlowOutcome in try await run(runner, observer: recorder) }
    while recorder.all.isEmpty { await Task.yield() }
    let clock = ContinuousClock()
    let started = clock.now
    task.cancel()
    await #expect(throws: FlowRunError.cancelled) { try await task.value }
    // Cancelled, not waited out: well before the agent's 30 s, on any load.
    #expect(started.duration(to: clock.now) < .seconds(20))
    #expect(recorder.all == ["started slow"])
}

@Test func runsOfOneFlowDoNotShareOutputs() async throws {
    let (runner, folder) = try runner([
        "a.yaml": "kind: mock\ndelay_ms: 5\nprompt: '{{input}}'\n",
        "b.yaml": "kind: template\nprompt: '{{outputs.a}}!'\n",
        "flows.yaml": "default: [a, b]\n",
    ])
    defer { folder.remove() }
    let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for index in 0..<20 {
            group.addTask { (index, try await run(runner, input: FlowInput(input: "\(index)", storyID: "s\(index)")).result) }
        }
        return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
    }
    #expect(results == Dictionary(uniqueKeysWithValues: (0..<20).map { ($0, "\($0)!") }))
}

@Test func theBenchmarkRunsTheRequestedNumberOfSteps() async throws {
    let duration = await FlowEngineBenchmark.measureTemplateChain(nodes: 1000)
    #expect(duration > .zero)
}
