import AsyncHTTPClient
import FlowEngine
import Logging

/// Runs a catalog's flows: one `RunState` per run, nothing shared between runs but the HTTP client.
///
/// A run either returns every step and the last output, or throws
/// `FlowRunError`: `.agentFailed` naming the agent, or `.cancelled` when its task is cancelled.
public struct FlowRunner: Sendable {
    public let catalog: AgentCatalog
    private let httpClient: HTTPClient
    private let llm: LLMConfiguration
    private let logger: Logger

    public init(catalog: AgentCatalog, httpClient: HTTPClient, llm: LLMConfiguration, logger: Logger) {
        self.catalog = catalog
        self.httpClient = httpClient
        self.llm = llm
        self.logger = logger
    }

    public func run(flow: FlowDefinition, input: FlowInput, observer: (any FlowRunObserver)?) async throws(FlowRunError) -> FlowOutcome {
        let state = RunState(input: input, httpClient: httpClient, llm: llm, logger: logger)
        do {
            _ = try await flow.graph.run(state, params: [:], observer: observer.map { ObserverBridge(observer: $0, state: state) })
        } catch {
            if Task.isCancelled || error is CancellationError { throw .cancelled }
            throw Self.runError(error)
        }
        let steps = state.steps
        return FlowOutcome(result: steps.last?.output ?? "", steps: steps)
    }

    static func runError(_ error: any Error) -> FlowRunError {
        switch error {
        case let failure as AgentFailure:
            return .agentFailed(agent: failure.agent, message: failure.message)
        case let FlowError.maxStepsExceeded(step, maxSteps):
            return .agentFailed(agent: step, message: "max_steps (\(maxSteps)) exceeded")
        default:
            return .agentFailed(agent: "flow", message: "\(error)")
        }
    }
}

/// Turns the engine's step events into the run observer's agent events.
private struct ObserverBridge: StepObserver {
    let observer: any FlowRunObserver
    let state: RunState

    func stepStarted(_ name: String) async {
        await observer.agentStarted(name)
    }

    func stepCompleted(_ name: String, duration: Duration) async {
        await observer.agentCompleted(name, output: state.latestOutput(of: name), duration: duration)
    }

    func stepFailed(_ name: String, duration: Duration, error: any Error) async {
        if Task.isCancelled || error is CancellationError { return }
        let message: String
        if let failure = error as? AgentFailure { message = failure.message } else { message = "\(error)" }
        await observer.agentFailed(name, message: message, duration: duration)
    }
}
