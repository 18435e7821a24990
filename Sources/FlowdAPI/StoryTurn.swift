import FlowdSync

/// A run's place in its story's queue in this process (`RunExecutor.reserveTurn`): closed
/// while earlier runs hold the story, open once it is this run's turn.
public final class StoryTurn: Sendable {
    let story: String
    private struct State {
        var isOpen = false
        var isClosed = false
        var waiter: CheckedContinuation<Bool, Never>?
    }
    private let state = Locked(State())

    init(story: String) { self.story = story }

    /// It is this run's turn: wakes its waiter. False when it was given up meanwhile.
    func open() -> Bool {
        let (opened, waiter) = state.withLock { s -> (Bool, CheckedContinuation<Bool, Never>?) in
            guard !s.isClosed else { return (false, nil) }
            s.isOpen = true
            defer { s.waiter = nil }
            return (true, s.waiter)
        }
        waiter?.resume(returning: true)
        return opened
    }

    /// It holds its story (opened, not given up).
    var isHeld: Bool { state.withLock { $0.isOpen && !$0.isClosed } }

    /// Gives up a turn not yet open (its task was cancelled); true when it did.
    private func closeIfWaiting() -> Bool {
        let (closed, waiter) = state.withLock { s -> (Bool, CheckedContinuation<Bool, Never>?) in
            guard !s.isOpen, !s.isClosed else { return (false, nil) }
            s.isClosed = true
            defer { s.waiter = nil }
            return (true, s.waiter)
        }
        waiter?.resume(returning: false)
        return closed
    }

    /// Given up: wakes its waiter with false.
    func close() {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.isClosed = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: false)
    }

    /// True once the turn opens; false when it is given up or the task is cancelled while
    /// waiting (`onCancel` then takes it out of the queue).
    func wait(onCancel: @escaping @Sendable () -> Void) async -> Bool {
        if state.withLock({ $0.isOpen }) { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { s -> Bool? in
                    if s.isClosed { return false }
                    if s.isOpen { return true }
                    s.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            if closeIfWaiting() { onCancel() }
        }
    }
}
