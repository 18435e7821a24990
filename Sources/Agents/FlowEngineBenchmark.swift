import AsyncHTTPClient
import Logging

/// Measures the engine's overhead per agent, for `flowd bench-engine`.
public enum FlowEngineBenchmark {
    /// Runs `nodes` template steps (two agents in a loop, stopped by `max_steps`)
    /// and returns the wall time of the run; divide by `nodes` for the cost per step.
    public static func measureTemplateChain(nodes: Int) async -> Duration {
        let logger = Logger(label: "flowd.bench")
        func agent(_ id: String, _ prompt: String) -> AgentDefinition {
            var definition = AgentDefinition(id: id, kind: .template, file: "\(id).yaml", requires: [])
            definition.prompt = try? PromptTemplate.parse(prompt)
            return definition
        }
        let catalog = AgentCatalog.make(
            agents: [agent("ping", "ping {{input}} {{story_id}}"), agent("pong", "pong {{outputs.ping}}")],
            flows: [(name: "loop", start: "ping",
                     transitions: ["ping": [("default", "pong")], "pong": [("default", "ping")]],
                     maxSteps: max(1, nodes))],
            logger: logger)
        let runner = FlowRunner(catalog: catalog, httpClient: HTTPClient.shared, llm: LLMConfiguration(), logger: logger)
        let input = FlowInput(input: "benchmark", storyID: "bench")
        let clock = ContinuousClock()
        let started = clock.now
        // The loop has no exit: it ends with max_steps exceeded once `nodes` steps have run.
        _ = try? await runner.run(flow: catalog.flow(named: "loop")!, input: input, observer: nil)
        return started.duration(to: clock.now)
    }
}
