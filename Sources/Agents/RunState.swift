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
    }

    let input: FlowInput
    let httpClient: HTTPClient
    let llm: LLMConfiguration
    let logger: Logger
    private let progress = Locked(Progress())

    init(input: FlowInput, httpClient: HTTPClient, llm: LLMConfiguration, logger: Logger) {
        self.input = input
        self.httpClient = httpClient
        self.llm = llm
        self.logger = logger
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
