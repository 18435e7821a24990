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

    /// Runs `flow`; with `journal` (the steps a run completed before, in order), goes on after
    /// them: their outputs are restored, their agents not run again, and they count toward
    /// `max_steps` and in the outcome's steps.
    public func run(flow: FlowDefinition, input: FlowInput, journal: [AgentStep] = [],
                    observer: (any FlowRunObserver)?) async throws(FlowRunError) -> FlowOutcome {
        let state = RunState(input: input, httpClient: httpClient, llm: llm, logger: logger, observer: observer)
        for step in journal { state.record(step) }
        do {
            _ = try await flow.graph.run(state, params: [:], observer: observer.map { ObserverBridge(observer: $0, state: state) },
                                         resumingAfter: journal.map { ($0.agent, $0.action) })
        } catch {
            if Task.isCancelled || error is CancellationError { throw .cancelled }
            throw Self.runError(error)
        }
        let steps = state.steps
        return FlowOutcome(result: steps.last?.output ?? "", steps: steps)
    }

    /// The agent a run that completed `journal` goes on with; nil when none is left (or the
    /// journal does not fit the flow, which the run then reports).
    public func nextAgent(of flow: FlowDefinition, after journal: [AgentStep]) -> String? {
        (try? flow.graph.position(after: journal.map { ($0.agent, $0.action) }))?.next
    }

    static func runError(_ error: any Error) -> FlowRunError {
        switch error {
        case let failure as AgentFailure:
            return .agentFailed(agent: failure.agent, message: failure.message)
        case let FlowError.maxStepsExceeded(step, maxSteps):
            return .agentFailed(agent: step, message: "max_steps (\(maxSteps)) exceeded")
        case let FlowError.pathMismatch(step, position):
            return .agentFailed(agent: step, message: "step \(position) of the run's journal is not where the flow goes now (the flow changed)")
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
        let step = state.lastStep ?? AgentStep(agent: name, prompt: "", output: state.latestOutput(of: name))
        await observer.stepCompleted(step, duration: duration)
    }

    func stepFailed(_ name: String, duration: Duration, error: any Error) async {
        if Task.isCancelled || error is CancellationError { return }
        let message: String
        if let failure = error as? AgentFailure { message = failure.message } else { message = "\(error)" }
        await observer.agentFailed(name, message: message, duration: duration)
    }
}
