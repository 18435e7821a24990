import AsyncHTTPClient
import FlowEngine
import Logging
import FlowdSync

/// The shared store of one run: its input, its services, and what its agents produced.
///
/// Owned by one run; agents read and append under a lock, never across an await.
final class RunState: Sendable {
    struct Progress: Sendable {
        var outputs: [String: String] = [:]
        var steps: [AgentStep] = []
        /// Usage reported by the attempts of the agent running now, for its step.
        var pendingUsage: TokenUsage?
    }

    let input: FlowInput
    let httpClient: HTTPClient
    let llm: LLMConfiguration
    let logger: Logger
    /// Hears the pieces of llm output and the usage as they come.
    let observer: (any FlowRunObserver)?
    private let progress = Locked(Progress())

    init(input: FlowInput, httpClient: HTTPClient, llm: LLMConfiguration, logger: Logger, observer: (any FlowRunObserver)? = nil) {
        self.input = input
        self.httpClient = httpClient
        self.llm = llm
        self.logger = logger
        self.observer = observer
    }

    /// A piece of `agent`'s output as its provider streamed it.
    func token(_ agent: String, _ text: String) {
        observer?.agentToken(agent, text)
    }

    /// An attempt of `agent` reported `usage`: it counts for the run now, and for the step
    /// the agent completes (`takeUsage`).
    func usage(_ agent: String, _ usage: TokenUsage) {
        progress.withLock { $0.pendingUsage = ($0.pendingUsage ?? TokenUsage()) + usage }
        observer?.agentUsage(agent, usage)
    }

    /// The usage the running agent's attempts reported, for its step; reset for the next agent.
    func takeUsage() -> TokenUsage? {
        progress.withLock { $0.pendingUsage.take() }
    }

    var outputs: [String: String] { progress.withLock { $0.outputs } }

    func record(_ step: AgentStep) {
        progress.withLock {
            $0.outputs[step.agent] = step.output
            $0.steps.append(step)
        }
    }

    func latestOutput(of agent: String) -> String {
        progress.withLock { $0.outputs[agent] ?? "" }
    }

    var steps: [AgentStep] { progress.withLock { $0.steps } }

    var lastStep: AgentStep? { progress.withLock { $0.steps.last } }
}
