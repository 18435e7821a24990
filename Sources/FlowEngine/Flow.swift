import Logging

/// A graph of named steps walked from `start`, each step's action choosing the next.
///
/// The walk ends when the action (`nil` meaning "default") has no successor: with
/// PocketFlow's warning `Flow ends: '<action>' not found in [...]` when the step
/// had successors, silently when it had none; `run` returns the last action. Every
/// step gets the flow's `params` merged with those the caller passes. A flow is a
/// `Runnable`, so flows nest and an inner flow's last action steers the outer one.
/// With `maxSteps` set, the run fails with `FlowError.maxStepsExceeded` when one
/// more step would start (a nested flow counts as one step of its parent and
/// keeps its own count). Building a flow is not thread-safe; running it is.
public struct Flow<Shared: Sendable>: Runnable {
    struct Step: Sendable {
        var name: String
        var node: any Runnable<Shared>
        /// `index` nil: the action ends the flow on purpose (no warning).
        var successors: [(action: Action, index: Int?)]
    }

    /// Names steps in the observer's events and errors.
    public var name: String
    /// Defaults for the params of every step (the caller's params win).
    public var params: Params = [:]
    /// Upper bound on the steps one run of this flow executes; `nil` for none.
    public var maxSteps: Int?
    private var steps: [Step] = []
    private var indexByName: [String: Int] = [:]
    private var startIndex: Int?
    private let logger: Logger

    public init(name: String = "flow", maxSteps: Int? = nil, logger: Logger = Logger(label: "FlowEngine")) {
        self.name = name
        self.maxSteps = maxSteps
        self.logger = logger
    }

    /// Adds a step; the first step added is the start unless `start(at:)` says otherwise.
    public mutating func add(_ name: String, _ node: any Runnable<Shared>) {
        precondition(indexByName[name] == nil, "step '\(name)' added twice")
        indexByName[name] = steps.count
        if startIndex == nil { startIndex = steps.count }
        steps.append(Step(name: name, node: node, successors: []))
    }

    /// Makes `name` (already added) the start step.
    public mutating func start(at name: String) {
        startIndex = index(of: name)
    }

    /// After `from` returns `action`, the flow goes on with `to` (both already added).
    /// A second connection for the same action replaces the first, as in PocketFlow.
    public mutating func connect(_ from: String, on action: Action = "default", to: String) {
        let source = index(of: from), target = index(of: to)
        if let existing = steps[source].successors.firstIndex(where: { $0.action == action }) {
            logger.warning("Overwriting successor for action '\(action)'", metadata: ["step": "\(from)"])
            steps[source].successors[existing].index = target
        } else {
            steps[source].successors.append((action, target))
        }
    }

    /// After `from` returns `action`, the flow ends quietly (flowd's `end`).
    public mutating func end(_ from: String, on action: Action) {
        let source = index(of: from)
        steps[source].successors.removeAll { $0.action == action }
        steps[source].successors.append((action, nil))
    }

    private func index(of name: String) -> Int {
        guard let index = indexByName[name] else { preconditionFailure("unknown step '\(name)'") }
        return index
    }

    public func run(_ shared: Shared, params: Params = [:], observer: (any StepObserver)? = nil) async throws -> Action? {
        guard let start = startIndex else { return nil }
        return try await walk(from: start, executed: 0, shared, params, observer)
    }

    /// Where a run that already took `path` (each step's name and the action it returned,
    /// from the start) goes on: the next step (nil when the path ended the flow), how many
    /// steps it executed, and the last action. Throws `FlowError.pathMismatch` when the path
    /// is not one this flow walks (its steps were changed meanwhile).
    public func position(after path: [(step: String, action: Action?)]) throws -> (next: String?, executed: Int, action: Action?) {
        var current = startIndex
        var last: Action?
        for (k, taken) in path.enumerated() {
            guard let index = current, steps[index].name == taken.step else {
                throw FlowError.pathMismatch(step: taken.step, position: k + 1)
            }
            last = taken.action
            let key = taken.action ?? "default"
            current = steps[index].successors.first(where: { $0.action == key })?.index
        }
        return (current.map { steps[$0].name }, path.count, last)
    }

    /// Goes on with a run that already took `path` (see `position(after:)`): the steps after
    /// it run, and count toward `maxSteps` after the path's.
    public func run(_ shared: Shared, params: Params = [:], observer: (any StepObserver)? = nil,
                    resumingAfter path: [(step: String, action: Action?)]) async throws -> Action? {
        if path.isEmpty { return try await run(shared, params: params, observer: observer) }
        let (next, executed, action) = try position(after: path)
        guard let next, let index = indexByName[next] else { return action }
        return try await walk(from: index, executed: executed, shared, params, observer)
    }

    private func walk(from start: Int, executed: Int, _ shared: Shared, _ params: Params, _ observer: (any StepObserver)?) async throws -> Action? {
        var current = start
        var executed = executed
        let stepParams = params.isEmpty ? self.params : self.params.merging(params) { _, given in given }
        while true {
            try Task.checkCancellation()
            let step = steps[current]
            if let maxSteps, executed >= maxSteps {
                throw FlowError.maxStepsExceeded(step: step.name, maxSteps: maxSteps)
            }
            executed += 1
            let action = try await runStep(step, shared, stepParams, observer)
            let key = action ?? "default"
            guard let next = step.successors.first(where: { $0.action == key }) else {
                if !step.successors.isEmpty {
                    let known = step.successors.map { "'\($0.action)'" }.joined(separator: ", ")
                    logger.warning("Flow ends: '\(key)' not found in [\(known)]",
                                   metadata: ["flow": "\(name)", "step": "\(step.name)"])
                }
                return action
            }
            guard let nextIndex = next.index else { return action }
            current = nextIndex
        }
    }

    private func runStep(_ step: Step, _ shared: Shared, _ params: Params, _ observer: (any StepObserver)?) async throws -> Action? {
        guard let observer else {
            return try await step.node.run(shared, params: params, observer: nil)
        }
        let clock = ContinuousClock()
        let started = clock.now
        await observer.stepStarted(step.name)
        do {
            let action = try await step.node.run(shared, params: params, observer: observer)
            await observer.stepCompleted(step.name, duration: started.duration(to: clock.now))
            return action
        } catch {
            await observer.stepFailed(step.name, duration: started.duration(to: clock.now), error: error)
            throw error
        }
    }
}
