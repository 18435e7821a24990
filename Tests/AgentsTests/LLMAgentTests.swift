@testable import Agents
import FlowdTesting
import AsyncHTTPClient
import Foundation
import FlowdJSON
import Logging
import Testing

private func llmRunner(_ server: StubLLMServer?, agent: String, key: String? = "secret") throws -> (FlowRunner, AgentsFolder) {
    let folder = try AgentsFolder(["writer.yaml": agent, "flows.yaml": "default: [writer]\n"])
    let llm = LLMConfiguration(baseURL: server?.baseURL, apiKey: key, defaultModel: "default-model")
    return (FlowRunner(catalog: try folder.load(), httpClient: .shared, llm: llm, logger: Logger(label: "test")), folder)
}

private let input = FlowInput(
    input: "a todo app", storyID: "s1",
    memory: ["writer": AgentMemory(lastOutput: "v1", history: [
        ChatMessage(role: "user", content: "earlier question"), ChatMessage(role: "assistant", content: "earlier answer"),
    ])])

@Test func anLLMAgentSendsPersonaHistoryAndPromptWithTheKey() async throws {
    let server = try StubLLMServer { _ in .init(body: StubLLMServer.completion("the answer")) }
    defer { server.stop() }
    let (runner, folder) = try llmRunner(server, agent: """
        kind: llm
        model: test-model
        system: You are terse.
        prompt: 'Plan {{input}}'
        """)
    defer { folder.remove() }
    let outcome = try await runner.run(flow: runner.catalog.flow(named: "default")!, input: input, observer: nil)
    #expect(outcome.result == "the answer")
    let request = try #require(server.requests.first)
    #expect(request.method == "POST")
    #expect(request.path == "/v1/chat/completions")
    #expect(request.headers["authorization"] == "Bearer secret")
    let json = try #require(request.json)
    #expect(json["model"]?.stringValue == "test-model")
    let messages = try #require(json["messages"])
    #expect(messages == [
        ["role": "system", "content": "You are terse."],
        ["role": "user", "content": "earlier question"],
        ["role": "assistant", "content": "earlier answer"],
        ["role": "user", "content": "Plan a todo app"],
    ])
}

@Test func anLLMAgentWithoutModelOrKeyUsesTheDefaultModelAndNoAuthorization() async throws {
    let server = try StubLLMServer { _ in .init(body: StubLLMServer.completion("ok")) }
    defer { server.stop() }
    let (runner, folder) = try llmRunner(server, agent: "kind: llm\nprompt: hi\n", key: nil)
    defer { folder.remove() }
    _ = try await runner.run(flow: runner.catalog.flow(named: "default")!, input: input, observer: nil)
    let request = try #require(server.requests.first)
    #expect(request.headers["authorization"] == nil)
    #expect(request.json?["model"]?.stringValue == "default-model")
    #expect(request.json?["messages"]?.elements.count == 3)
}

@Test func aProviderErrorFailsTheAgentWithWhatTheProviderSaid() async throws {
    let server = try StubLLMServer { _ in .init(status: 500, body: #"{"error": "model overloaded"}"#) }
    defer { server.stop() }
    let (runner, folder) = try llmRunner(server, agent: "kind: llm\nprompt: hi\nmax_retries: 2\n")
    defer { folder.remove() }
    let recorder = RunRecorder()
    await #expect(throws: FlowRunError.agentFailed(
        agent: "writer", message: #"LLM provider answered 500: {"error": "model overloaded"}"#)) {
        try await runner.run(flow: runner.catalog.flow(named: "default")!, input: input, observer: recorder)
    }
    #expect(server.requests.count == 2)
    #expect(recorder.all == ["started writer", #"failed writer: LLM provider answered 500: {"error": "model overloaded"}"#])
}

@Test func aBodyWithoutChoicesIsAnAgentFailure() async throws {
    let server = try StubLLMServer { _ in .init(body: #"{"choices": []}"#) }
    defer { server.stop() }
    let (runner, folder) = try llmRunner(server, agent: "kind: llm\nprompt: hi\n")
    defer { folder.remove() }
    await #expect(throws: FlowRunError.agentFailed(
        agent: "writer", message: #"LLM provider answered 200 without choices: {"choices": []}"#)) {
        try await runner.run(flow: runner.catalog.flow(named: "default")!, input: input, observer: nil)
    }
}

@Test func aSlowProviderTimesOutTheAttempt() async throws {
    let server = try StubLLMServer { _ in .init(body: StubLLMServer.completion("late"), delay: .seconds(10)) }
    defer { server.stop() }
    let (runner, folder) = try llmRunner(server, agent: "kind: llm\nprompt: hi\ntimeout: 0.3\n")
    defer { folder.remove() }
    let clock = ContinuousClock()
    let started = clock.now
    await #expect(throws: FlowRunError.agentFailed(agent: "writer", message: "timed out after 0.3s")) {
        try await runner.run(flow: runner.catalog.flow(named: "default")!, input: input, observer: nil)
    }
    // The provider answers after 10 s: the attempt was cut before that (the error above says
    // by the timeout; this bound only says it did not wait for the answer, on any load).
    #expect(started.duration(to: clock.now) < .seconds(10))
}

@Test func anLLMAgentWithoutAnEndpointFailsClearly() async throws {
    let (runner, folder) = try llmRunner(nil, agent: "kind: llm\nprompt: hi\n")
    defer { folder.remove() }
    await #expect(throws: FlowRunError.agentFailed(
        agent: "writer", message: "no LLM endpoint configured (set FLOWD_LLM_BASE_URL)")) {
        try await runner.run(flow: runner.catalog.flow(named: "default")!, input: input, observer: nil)
    }
}
