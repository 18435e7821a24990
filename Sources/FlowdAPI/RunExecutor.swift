import Agents
import FlowdHTTP
import FlowdJSON
import Logging
import Stores
import FlowdSync

/// Runs flows: one run at a time per story in this process, in arrival order; then a run's
/// documents, its story's memory contexts and the engine. It writes nothing: the run's
/// memory transaction is handed back, for the run's owner to commit with its finish.
///
/// The actor only coordinates (the per-story queues); the runs themselves proceed
/// concurrently outside it.
public actor RunExecutor {
    /// Messages of an llm agent's earlier turns kept in its context.
    static let maxHistoryMessages = 40

    let catalog: AgentCatalog
    let runner: FlowRunner
    let memory: any MemoryStore
    let documents: any DocumentStore
    let logger: Logger

    /// Stories with a run going, each with the turns waiting for it, in the order they were
    /// reserved (the run holding a story is not in its list: a free story costs nothing).
    private var stories: [String: [StoryTurn]] = [:]

    public init(catalog: AgentCatalog, runner: FlowRunner, memory: any MemoryStore, documents: any DocumentStore,
                logger: Logger) {
        self.catalog = catalog
        self.runner = runner
        self.memory = memory
        self.documents = documents
        self.logger = logger
    }

    /// Runs `body` in the story's turn in this process: after the story's earlier runs here,
    /// before its later ones. Nil, without running it, when the task was cancelled while waiting.
    public nonisolated func inTurn<T: Sendable>(of story: String, _ body: () async -> T) async -> T? {
        if let turn = await takeOrQueue(story) {
            guard await turn.wait(onCancel: { Task { await self.abandon(turn) } }) else { return nil }
        }
        let value = await body()
        await leave(story)
        return value
    }

    /// Takes a free story (nil) or queues a turn for it.
    private func takeOrQueue(_ story: String) -> StoryTurn? {
        guard stories[story] != nil else {
            stories[story] = []
            return nil
        }
        let turn = StoryTurn(story: story)
        stories[story]!.append(turn)
        return turn
    }

    /// Takes the next place in the story's queue now (resumed runs take theirs, in their
    /// order, before any new run arrives). Every turn reserved is then passed to `inTurn`
    /// or to `abandon`.
    public func reserveTurn(of story: String) -> StoryTurn {
        guard let turn = takeOrQueue(story) else {
            let held = StoryTurn(story: story)
            _ = held.open()
            return held
        }
        return turn
    }

    /// Waits for `turn`, runs `body`, then hands the story on. Nil, without running it,
    /// when the task was cancelled while waiting.
    public nonisolated func inTurn<T: Sendable>(_ turn: StoryTurn, _ body: () async -> T) async -> T? {
        guard await turn.wait(onCancel: { Task { await self.abandon(turn) } }) else { return nil }
        let value = await body()
        await leave(turn.story)
        return value
    }

    /// Gives up `turn`: held, the story goes on with the next one; waiting, it leaves the queue.
    public func abandon(_ turn: StoryTurn) {
        if turn.isHeld {
            turn.close()
            leave(turn.story)
            return
        }
        turn.close()
        if let index = stories[turn.story]?.firstIndex(where: { $0 === turn }) {
            stories[turn.story]!.remove(at: index)
        }
    }

    /// Hands the story to its next waiting run that still waits, if any.
    private func leave(_ story: String) {
        while var waiters = stories[story], !waiters.isEmpty {
            let next = waiters.removeFirst()
            stories[story] = waiters
            if next.open() { return }
        }
        stories[story] = nil
    }

    /// The agent a run of `flow` that completed `journal` goes on with (nil: none is left).
    public nonisolated func nextAgent(of flow: String, after journal: [RunStep]) -> String? {
        guard let definition = catalog.flow(named: flow) else { return nil }
        return runner.nextAgent(of: definition, after: journal.map { AgentStep(agent: $0.agent, prompt: $0.prompt, output: $0.output, action: $0.action) })
    }

    /// Documents, contexts, the flow; writes nothing. Runs on the caller's task, outside the
    /// actor. The flow must exist (the API checked it).
    public nonisolated func run(_ request: RunRequest, journal: [RunStep] = [], observer: (any FlowRunObserver)?) async -> FlowResult {
        guard let flow = catalog.flow(named: request.flow) else { return .ended(.failed(detail: "unknown flow '\(request.flow)'")) }
        let keys = flow.agentIDs.map { "\($0):\(request.storyID)" }
        let documentTexts: [String: String]
        let contexts: [String: JSONValue]
        do {
            documentTexts = flow.requiredDocuments.isEmpty ? [:] : try await documents.texts(flow.requiredDocuments)
            let missing = flow.requiredDocuments.filter { documentTexts[$0] == nil }
            if !missing.isEmpty { return .ended(.pendingDocuments(missing)) }
            contexts = try await memory.getMany(.isolated, keys)
        } catch {
            return .ended(.storeFailed(error))
        }

        var agentMemory: [String: AgentMemory] = [:]
        for (agent, key) in zip(flow.agentIDs, keys) {
            guard let context = contexts[key] else { continue }
            agentMemory[agent] = AgentMemory(
                lastOutput: context["last_output"]?.stringValue,
                history: (context["history"]?.arrayValue ?? []).compactMap { message in
                    guard let role = message["role"]?.stringValue, let content = message["content"]?.stringValue else { return nil }
                    return ChatMessage(role: role, content: content)
                })
        }

        let outcome: FlowOutcome
        do {
            outcome = try await runner.run(
                flow: flow,
                input: FlowInput(input: request.input, storyID: request.storyID, documents: documentTexts, memory: agentMemory),
                journal: journal.map { AgentStep(agent: $0.agent, prompt: $0.prompt, output: $0.output, action: $0.action) },
                observer: observer)
        } catch {
            switch error {
            case .cancelled: return .ended(.cancelled)
            case .agentFailed(let agent, let message): return .ended(.failed(detail: "\(agent): \(message)"))
            }
        }
        if Task.isCancelled { return .ended(.cancelled) }
        let transaction = commitTransaction(flow: flow, storyID: request.storyID, keys: keys, contexts: contexts, steps: outcome.steps)
        return .succeeded(result: outcome.result, memory: transaction)
    }

    /// Every agent of the flow gets a context; those that ran are `completed` with their
    /// latest output (and, for llm agents, the turn added to their history).
    private nonisolated func commitTransaction(flow: FlowDefinition, storyID: String, keys: [String],
                                               contexts: [String: JSONValue], steps: [AgentStep]) -> MemoryTransaction {
        var latest: [String: AgentStep] = [:]
        var turns: [String: [AgentStep]] = [:]
        for step in steps {
            latest[step.agent] = step
            turns[step.agent, default: []].append(step)
        }
        var transaction = MemoryTransaction()
        for (agent, key) in zip(flow.agentIDs, keys) {
            let existing = contexts[key]?.objectValue
            guard let step = latest[agent] else {
                if existing == nil {
                    transaction.set(.isolated, key, .object(["story_id": .string(storyID), "agent_id": .string(agent), "status": "initialized"]))
                }
                continue
            }
            var context = existing ?? [:]
            context["story_id"] = .string(storyID)
            context["agent_id"] = .string(agent)
            context["status"] = "completed"
            context["last_output"] = .string(step.output)
            if catalog.agent(id: agent)?.kind == .llm {
                var history = context["history"]?.arrayValue ?? []
                for turn in turns[agent] ?? [] {
                    history.append(["role": "user", "content": .string(turn.prompt)])
                    history.append(["role": "assistant", "content": .string(turn.output)])
                }
                context["history"] = .array(Array(history.suffix(RunExecutor.maxHistoryMessages)))
            }
            transaction.set(.isolated, key, .object(context))
        }
        return transaction
    }
}
