import Agents
import FlowdHTTP
import FlowdJSON
import Foundation
import Stores
import FlowdSync

/// A run of this process while it goes on: its record, its events so far, the clients that
/// follow it, and the task to cancel.
///
/// Events are numbered 1, 2, 3, … and sent to followers in that order, under one lock, so a
/// follower that joins late gets the earlier ones replayed and never one twice. The terminal
/// event is the last one.
final class LiveRun: FlowRunObserver, Sendable {
    let runID: String

    private struct State {
        var record: RunRecord
        var events: [RunEvent] = []
        /// Events sent to followers (the terminal one waits for the store).
        var published = 0
        var followers: [ObjectIdentifier: EventSubscriber] = [:]
        /// The followers that asked for `token` events (each is in `followers` too).
        var tokenFollowers: [ObjectIdentifier: EventSubscriber] = [:]
        /// The terminal event went out to the followers.
        var concluded = false
        /// The success whose finish the memory commit carries, until `conclude` adopts it.
        var committing: (record: RunRecord, terminal: RunEvent)?
        /// How the run ends is decided (`conclude`): a cancel comes too late.
        var settled = false
        var task: Task<Void, Never>?
        var inlineTask: InlineTask?
        /// A cancel was accepted: the run ends `cancelled`, whatever it was doing.
        var cancelRequested = false
        /// Waiting for the terminal event (`waitForConclusion`).
        var concludedWaiters: [CheckedContinuation<Void, Never>] = []
        /// Every completed step, those of its journal before this process included.
        var steps: [RunStep] = []
        /// How many of `steps` and `events` the journal has durably.
        var journaledSteps = 0
        var journaledEvents = 0
    }

    /// What a cancel request got.
    enum CancelAnswer: Equatable {
        /// The run will end `cancelled`; its status when asked.
        case accepted(RunStatus)
        /// The run committed its success, or its end was decided, first.
        case tooLate
    }

    /// The task of a `/run` request that runs its flow inline (no task of its own).
    struct InlineTask: @unchecked Sendable {
        // Only used to cancel, under the run's lock, between `beginInline` and `endInline`,
        // which the task itself calls around the run: it is alive whenever it is touched.
        let task: UnsafeCurrentTask
    }

    private let state: Locked<State>
    private let metrics: FlowdMetrics?
    /// Hears of the run's agents too (`flowd run`'s terminal lines).
    private let progress: (any FlowRunObserver)?
    /// Gets each progress event as it is numbered (for other processes to follow).
    private let onEvent: (@Sendable (RunEvent) -> Void)?
    private let journal: RunJournal?

    /// `resuming`: the steps and events a run left unfinished (or, for a retry, the steps of
    /// the run it retries, with no events) already has; its events go on after them.
    init(record: RunRecord, resuming: (steps: [RunStep], events: [RunEvent])? = nil, metrics: FlowdMetrics? = nil,
         progress: (any FlowRunObserver)? = nil, journal: RunJournal? = nil, onEvent: (@Sendable (RunEvent) -> Void)? = nil) {
        runID = record.runID
        var initial = State(record: record)
        if let resuming {
            initial.steps = resuming.steps
            initial.events = resuming.events
            initial.published = resuming.events.count
            initial.journaledSteps = resuming.steps.count
            initial.journaledEvents = resuming.events.count
            // Its journaled steps' usage, and from now on what it runs here (a retry's
            // journal has no usage: its steps count for the run that ran them).
            var usage = RunUsage()
            for step in resuming.steps { if let used = step.usage { usage += used } }
            initial.record.usage = usage
        }
        state = Locked(initial)
        self.metrics = metrics
        self.progress = progress
        self.journal = journal
        self.onEvent = onEvent
    }

    var record: RunRecord { state.withLock { $0.record } }

    /// The terminal event, once the run concluded.
    var terminalEvent: RunEvent? { state.withLock { s in s.concluded ? s.events.last : nil } }

    /// The task that runs it; cancelled at once if a cancel came first.
    func attach(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { s -> Bool in
            s.task = task
            return s.cancelRequested
        }
        if cancelNow { task.cancel() }
    }

    /// From now until `endInline()`, the run goes on on the calling task, which a `cancel()`
    /// cancels (at once if a cancel came first). A plain call, not a wrapper around the run: a
    /// waiting run holds one async frame, about 1 KB, for every level of its call chain.
    func beginInline() {
        withUnsafeCurrentTask { current in
            let cancelNow = state.withLock { s -> Bool in
                if let current { s.inlineTask = InlineTask(task: current) }
                return s.cancelRequested
            }
            if cancelNow { current?.cancel() }
        }
    }

    /// The calling task no longer runs the run: `cancel()` leaves it alone.
    func endInline() {
        state.withLock { $0.inlineTask = nil }
    }

    /// Stops the run at its next await, unless its success is being committed or its end was
    /// decided: decided under the same lock as `claimCommit` and `conclude`, so an accepted
    /// cancel always ends the run `cancelled` with nothing written. Idempotent.
    @discardableResult
    func cancel() -> CancelAnswer {
        state.withLock { s in
            if s.cancelRequested { return .accepted(s.record.status) }
            guard s.committing == nil, !s.settled else { return .tooLate }
            s.cancelRequested = true
            s.task?.cancel()
            s.inlineTask?.task.cancel()
            return .accepted(s.record.status)
        }
    }

    /// Claims the commit of the run's success with `result`, unless a cancel came first: the
    /// finish its memory commit carries. The live record does not change yet: readers see the
    /// success only once it is durable, when `conclude(.succeeded)` adopts exactly this (same
    /// `finished_at`, same events).
    func claimCommit(result: String) -> CommitClaim {
        state.withLock { s in
            if s.cancelRequested { return .cancelled }
            let (record, terminal) = LiveRun.conclusion(of: s, .succeeded(result: result))
            s.committing = (record, terminal)
            return .commit(RunFinish(record: record, events: s.events + [terminal]))
        }
    }

    /// Returns once the run's terminal event went out.
    func waitForConclusion() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { s -> Bool in
                if s.concluded { return true }
                s.concludedWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    func markRunning() {
        state.withLock { if $0.record.status == .queued { $0.record.status = .running } }
    }

    // MARK: Progress, in the original service's vocabulary

    func agentStarted(_ agent: String) async {
        await progress?.agentStarted(agent)
        let now = Date()
        publish { id in .progress(id: id, runID: runID, agent: agent, status: "started", at: now) }
    }

    func agentCompleted(_ agent: String, output: String, duration: Duration) async {
        await stepCompleted(AgentStep(agent: agent, prompt: "", output: output), duration: duration)
    }

    /// Publishes the step's events and adds it to the journal; a step the journal must keep
    /// durably (`RunJournal.mustBeDurable`) is written, with the cheaper ones before it,
    /// before this returns, so before the next agent starts.
    func stepCompleted(_ step: AgentStep, duration: Duration) async {
        let agent = step.agent
        await progress?.stepCompleted(step, duration: duration)
        metrics?.agent(agent, outcome: "completed", duration: duration)
        let now = Date()
        let entry = RunStep(agent: agent, prompt: step.prompt, output: step.output, action: step.action,
                            usage: step.usage.map { RunUsage(promptTokens: $0.promptTokens, completionTokens: $0.completionTokens) })
        let durable = journal?.mustBeDurable(agent, duration) ?? false
        // One lock for the step's two events and its place in the journal.
        let unjournaled = state.withLock { s -> (RunRecord, [RunStep], first: Int, [RunEvent], eventsEnd: Int)? in
            LiveRun.publish(.progress(id: s.events.count + 1, runID: runID, agent: agent, status: "completed", at: now,
                                      duration: duration.seconds), in: &s, onEvent: onEvent)
            LiveRun.publish(.result(id: s.events.count + 1, runID: runID, agent: agent, output: step.output), in: &s, onEvent: onEvent)
            s.steps.append(entry)
            guard durable else { return nil }
            return (s.record, Array(s.steps[s.journaledSteps...]), s.journaledSteps + 1, Array(s.events[s.journaledEvents...]), s.events.count)
        }
        guard let journal, let (record, steps, first, events, eventsEnd) = unjournaled,
              await journal.write(record, steps, first, events) else { return }
        state.withLock { s in
            s.journaledSteps = max(s.journaledSteps, first - 1 + steps.count)
            s.journaledEvents = max(s.journaledEvents, eventsEnd)
        }
    }

    /// Sends a piece of an llm agent's output to the followers that asked for tokens, at once:
    /// a follower that is behind holds it (`EventSubscriber.sendToken`), nothing waits.
    func agentToken(_ agent: String, _ text: String) {
        state.withLock { s in
            guard !s.tokenFollowers.isEmpty else { return }
            var encoded: [UInt8] = []
            ServerSentEvents.encodeToken(runID: runID, agent: agent, text: text, into: &encoded)
            for follower in s.tokenFollowers.values {
                follower.sendToken(runID: runID, agent: agent, text: text, encoded: encoded)
            }
        }
    }

    /// Counts an llm attempt's usage in the record, and in `/metrics`.
    func agentUsage(_ agent: String, _ usage: TokenUsage) {
        let flow = state.withLock { s in
            s.record.usage += RunUsage(promptTokens: usage.promptTokens, completionTokens: usage.completionTokens)
            return s.record.flow
        }
        metrics?.llmUsage(flow: flow, agent: agent, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens)
    }

    /// The run goes on after a process left it unfinished, with `agent` (nil: none is left).
    func publishResumed(agent: String?) {
        let now = Date()
        publish { id in .resumed(id: id, runID: runID, agent: agent, at: now) }
    }

    func agentFailed(_ agent: String, message: String, duration: Duration) async {
        await progress?.agentFailed(agent, message: message, duration: duration)
        metrics?.agent(agent, outcome: "failed", duration: duration)
        let now = Date()
        publish { id in .progress(id: id, runID: runID, agent: agent, status: "failed", at: now, duration: duration.seconds) }
    }

    /// Numbers the event `make` builds, keeps it and sends it to the followers.
    private func publish(_ make: (Int) -> RunEvent) {
        state.withLock { s in LiveRun.publish(make(s.events.count + 1), in: &s, onEvent: onEvent) }
    }

    /// Keeps `event` (numbered `s.events.count + 1`) and sends it, under the run's lock.
    private static func publish(_ event: RunEvent, in s: inout State, onEvent: (@Sendable (RunEvent) -> Void)?) {
        s.events.append(event)
        s.published = s.events.count
        onEvent?(event)
        guard !s.followers.isEmpty else { return }
        var encoded: [UInt8] = []
        ServerSentEvents.encode(event, into: &encoded)
        for follower in s.followers.values { follower.send(encoded: encoded) }
    }

    // MARK: The end

    /// Decides how the run ended, records it and appends its terminal event (not yet
    /// published). A run whose cancel was accepted ends `cancelled` whatever `outcome` says
    /// (it cannot have committed); a success is concluded exactly as `claimCommit` made it.
    /// Returns that outcome and the run's finish (its steps kept for a retry when it failed
    /// or was cancelled), for the run store.
    func conclude(_ outcome: RunOutcome) -> (outcome: RunOutcome, finish: RunFinish) {
        state.withLock { s in
            s.settled = true
            var outcome = outcome
            if s.cancelRequested, outcome != .cancelled { outcome = .cancelled }
            let committed = s.committing.take()
            let (record, terminal): (RunRecord, RunEvent)
            if case .succeeded = outcome, let committed {
                (record, terminal) = committed
            } else {
                (record, terminal) = LiveRun.conclusion(of: s, outcome)
            }
            s.record = record
            s.events.append(terminal)
            return (outcome, LiveRun.finish(of: s))
        }
    }

    private static func finish(of s: State) -> RunFinish {
        let retriable = s.record.status == .failed || s.record.status == .cancelled
        return RunFinish(record: s.record, events: s.events, steps: retriable ? s.steps : [])
    }

    /// Replaces a conclusion not yet published by `cancelled` (another replica's cancel came
    /// first, as the shared store found); returns the new record and events.
    func reconcludeCancelled() -> RunFinish {
        state.withLock { s in
            if s.events.count > s.published { s.events.removeLast() }
            let (record, terminal) = LiveRun.conclusion(of: s, .cancelled)
            s.record = record
            s.events.append(terminal)
            return LiveRun.finish(of: s)
        }
    }

    /// The final record and the terminal event an outcome gives, from the state as it is.
    private static func conclusion(of s: State, _ outcome: RunOutcome) -> (RunRecord, RunEvent) {
        let (status, detail) = outcome.answer
        var record = s.record
        record.finishedAt = Date()
        let id = JSONValue.string(s.record.runID)
        let eventID = s.events.count + 1
        switch outcome {
        case .succeeded(let result):
            record.status = .succeeded
            record.result = result
            return (record, RunEvent(id: eventID, name: RunEventName.done,
                                     data: ["result": .string(result), "pending_docs": .null, "run_id": id]))
        case .pendingDocuments(let ids):
            record.status = .pendingDocs
            record.pendingDocs = ids
            return (record, RunEvent(id: eventID, name: RunEventName.done,
                                     data: ["result": .null, "pending_docs": .array(ids.map(JSONValue.string)), "run_id": id]))
        case .cancelled:
            record.status = .cancelled
            record.error = detail
            return (record, RunEvent(id: eventID, name: RunEventName.cancelled, data: ["run_id": id]))
        case .failed, .storeFailed:
            record.status = .failed
            record.error = detail
            return (record, RunEvent.failure(id: eventID, runID: s.record.runID, code: status, detail: detail ?? ""))
        }
    }

    /// Sends the terminal event and ends every follower's stream.
    func publishConclusion() {
        state.withLock { s in
            for event in s.events[s.published...] {
                for follower in s.followers.values { follower.send(event) }
            }
            s.published = s.events.count
            s.concluded = true
            for follower in s.followers.values { follower.finish() }
            s.followers = [:]
            s.tokenFollowers = [:]
            for waiter in s.concludedWaiters { waiter.resume() }
            s.concludedWaiters = []
        }
    }

    /// Replays the events after `after` to `follower`, then follows live until the end.
    /// Returns false, sending nothing, when the run has concluded and no event is after
    /// `after`: the answer is then 204, as for a stored run, even while its record is
    /// still being written (the run is live until then).
    @discardableResult
    func follow(_ follower: EventSubscriber, after: Int) -> Bool {
        let key = ObjectIdentifier(follower)
        let following = state.withLock { s -> Bool in
            if s.concluded && after >= s.published { return false }
            for event in s.events[min(max(after, 0), s.published)..<s.published] { follower.send(event) }
            if s.concluded {
                follower.finish()
            } else {
                s.followers[key] = follower
                if follower.tokens { s.tokenFollowers[key] = follower }
            }
            return true
        }
        guard following else { return false }
        follower.stream.onClose { [weak self] in
            self?.state.withLock { s in
                s.followers.removeValue(forKey: key)
                s.tokenFollowers.removeValue(forKey: key)
            }
        }
        return true
    }
}
