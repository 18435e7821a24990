import FlowEngine
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
            return try await withTimeout { try await mock(prepared.prompt, attempt: context.attempt) }
        case .llm:
            let client = LLMClient(definition: definition, run: prepared.run)
            return try await withTimeout { try await client.complete(prompt: prepared.prompt) }
        }
    }

    private func mock(_ prompt: String, attempt: Int) async throws -> String {
        if definition.delayMilliseconds > 0 {
            try await Task.sleep(for: .milliseconds(definition.delayMilliseconds))
        }
        let failing = definition.failAttempts > 0 ? attempt <= definition.failAttempts : definition.fail != nil
        if failing {
            throw AgentFailure(agent: definition.id, message: definition.fail ?? "mock failure")
        }
        return definition.output ?? prompt
    }

    /// Runs `body` within the agent's `timeout`; cancellation of the run passes through.
    func withTimeout(_ body: @escaping @Sendable () async throws -> String) async throws -> String {
        let agent = definition.id
        let timeout = definition.timeout
        return try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask(operation: body)
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int64((timeout * 1000).rounded())))
                throw AgentFailure(agent: agent, message: "timed out after \(Self.format(seconds: timeout))s")
            }
            defer { group.cancelAll() }
            guard let output = try await group.next() else { throw CancellationError() }
            return output
        }
    }

    static func format(seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int64(seconds)) : String(seconds)
    }

    func post(_ shared: RunState, prepResult: Prepared, execResult: String, context: NodeContext) async throws -> Action? {
        shared.record(AgentStep(agent: definition.id, prompt: prepResult.prompt, output: execResult))
        return definition.action(for: execResult)
    }
}
