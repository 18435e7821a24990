import FlowEngine
import FlowdSync
import Foundation

/// An agent as an engine node: prep renders the prompt, exec runs the kind, post records and routes.
///
/// Holds only the immutable definition; the attempt number comes with each call.
struct AgentNode: Node {
    typealias Shared = RunState
    let definition: AgentDefinition
    let maxRetries: Int
    let wait: Duration

    init(definition: AgentDefinition) {
        self.definition = definition
        maxRetries = definition.maxRetries
        wait = .milliseconds(Int64((definition.wait * 1000).rounded()))
    }

    /// The rendered prompt and the run it belongs to (an llm call needs the run's client and memory).
    struct Prepared: Sendable {
        var prompt: String
        var run: RunState
    }

    func prep(_ shared: RunState, context: NodeContext) async throws -> Prepared {
        guard let prompt = definition.prompt else { return Prepared(prompt: "", run: shared) }
        do {
            return Prepared(prompt: try prompt.render(
                input: shared.input,
                outputs: shared.outputs,
                lastOutput: shared.input.memory[definition.id]?.lastOutput), run: shared)
        } catch {
            switch error {
            case let .outputNotYetProduced(agent):
                throw AgentFailure(agent: definition.id, message: "{{outputs.\(agent)}}: agent '\(agent)' has not run yet in this run")
            case let .documentMissing(id):
                throw AgentFailure(agent: definition.id, message: "{{docs.\(id)}}: document '\(id)' is missing")
            }
        }
    }

    func exec(_ prepared: Prepared, context: NodeContext) async throws -> String {
        switch definition.kind {
        case .template:
            return prepared.prompt
        case .mock:
            // A mock's wait is a sleep, which ends at once when the run is cancelled: it needs
            // no task of its own to be bounded (`withTimeout`'s two tasks cost about 8 KB a
            // waiting run; scripts/bench slow holds 5,000).
            return try await mock(prepared.prompt, attempt: context.attempt)
        case .llm:
            let client = LLMClient(definition: definition, run: prepared.run)
            return try await withTimeout { try await client.complete(prompt: prepared.prompt) }
        }
    }

    /// Waits `delay_ms`, bounded by the agent's `timeout` (then fails as `withTimeout` would),
    /// then fails or answers as configured.
    private func mock(_ prompt: String, attempt: Int) async throws -> String {
        if definition.delayMilliseconds > 0 {
            let timeout = Int64((definition.timeout * 1000).rounded())
            try await Task.sleep(for: .milliseconds(min(Int64(definition.delayMilliseconds), timeout)))
            if Int64(definition.delayMilliseconds) > timeout {
                throw AgentFailure(agent: definition.id, message: "timed out after \(Self.format(seconds: definition.timeout))s")
            }
        }
        let failing = definition.failAttempts > 0 ? attempt <= definition.failAttempts : definition.fail != nil
        if failing {
            throw AgentFailure(agent: definition.id, message: definition.fail ?? "mock failure")
        }
        return definition.output ?? prompt
    }

    /// Runs `body` within the agent's `timeout`; cancellation of the run passes through.
    ///
    /// The bound is hard: past it the attempt fails at once, and `body` is cancelled and
    /// left to wind down on its own (a provider call slow to notice its cancellation does
    /// not hold the run).
    func withTimeout(_ body: @escaping @Sendable () async throws -> String) async throws -> String {
        let agent = definition.id
        let timeout = definition.timeout
        let race = AttemptRace()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let work = Task {
                    do {
                        race.settle(.success(try await body()))
                    } catch {
                        race.settle(.failure(error))
                    }
                }
                let timer = Task {
                    guard (try? await Task.sleep(for: .milliseconds(Int64((timeout * 1000).rounded())))) != nil else { return }
                    race.settle(.failure(AgentFailure(agent: agent, message: "timed out after \(Self.format(seconds: timeout))s")))
                }
                race.begin(continuation, tasks: [work, timer])
            }
        } onCancel: {
            race.settle(.failure(CancellationError()))
        }
    }

    static func format(seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int64(seconds)) : String(seconds)
    }

    func post(_ shared: RunState, prepResult: Prepared, execResult: String, context: NodeContext) async throws -> Action? {
        let action = definition.action(for: execResult)
        let usage = definition.kind == .llm ? shared.takeUsage() : nil
        shared.record(AgentStep(agent: definition.id, prompt: prepResult.prompt, output: execResult, action: action, usage: usage))
        return action
    }
}

/// The first outcome of an attempt (its work, its timer or the run's cancellation) wins:
/// it resumes the waiting attempt, once, and cancels the attempt's tasks.
private final class AttemptRace: Sendable {
    private struct State {
        var continuation: CheckedContinuation<String, any Error>?
        var tasks: [Task<Void, Never>] = []
        /// Settled before `begin` (a cancellation that came first).
        var early: Result<String, any Error>?
        var settled = false
    }

    private let state = Locked(State())

    func begin(_ continuation: CheckedContinuation<String, any Error>, tasks: [Task<Void, Never>]) {
        let early = state.withLock { s -> Result<String, any Error>? in
            if let early = s.early { return early }
            s.continuation = continuation
            s.tasks = tasks
            return nil
        }
        guard let early else { return }
        for task in tasks { task.cancel() }
        continuation.resume(with: early)
    }

    func settle(_ outcome: Result<String, any Error>) {
        let won = state.withLock { s -> (CheckedContinuation<String, any Error>?, [Task<Void, Never>])? in
            guard !s.settled else { return nil }
            s.settled = true
            guard let continuation = s.continuation else {
                s.early = outcome
                return (nil, [])
            }
            defer { s.continuation = nil; s.tasks = [] }
            return (continuation, s.tasks)
        }
        guard let (continuation, tasks) = won else { return }
        for task in tasks { task.cancel() }
        continuation?.resume(with: outcome)
    }
}
