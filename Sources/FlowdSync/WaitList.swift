import Synchronization

/// Tasks waiting until a condition holds (a counter reached zero, a buffer filled up),
/// woken by whoever may have made it hold: the signalled replacement of a sleep-and-look loop.
///
/// The side that changes the state calls `notify()` after the change; with no waiter that is
/// one atomic load, so it can sit on a hot path (a libmicrohttpd thread ending a request).
/// Only when a task waits does it take the lock and resume the waiters, which then look at
/// their condition again (a wake-up is a hint, never a promise).
///
/// Invariant: no wake-up is lost. A waiter registers (and raises `armed`) before it reads the
/// condition, and a notifier changes the state before it reads `armed`; both orders are
/// sequentially consistent, so at least one of the two sees the other. The state itself must
/// be published by an atomic (sequentially consistent) or under a lock the waiter's
/// `condition` also takes.
public final class WaitList: Sendable {
    private enum Slot {
        /// Registered, not suspended yet.
        case pending
        /// Suspended on this continuation.
        case waiting(CheckedContinuation<Void, Never>)
        /// Woken before it suspended: it must not suspend.
        case woken
    }

    private let armed = Atomic<Bool>(false)
    private let slots = Locked<[UInt64: Slot]>([:])
    private let nextID = Atomic<UInt64>(0)

    public init() {}

    /// Wakes every waiter, so that each looks at its condition again. Cheap when none waits.
    @inline(__always)
    public func notify() {
        guard armed.load(ordering: .sequentiallyConsistent) else { return }
        wakeAll()
    }

    private func wakeAll() {
        let waiting = slots.withLock { slots -> [CheckedContinuation<Void, Never>] in
            var waiting: [CheckedContinuation<Void, Never>] = []
            for (id, slot) in slots {
                switch slot {
                case .waiting(let continuation): waiting.append(continuation); slots[id] = .woken
                case .pending: slots[id] = .woken
                case .woken: break
                }
            }
            return waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Returns true as soon as `condition` holds, false once `timeout` has passed (or the task
    /// is cancelled) without it holding. `condition` is evaluated on the waiting task.
    public func wait(until condition: () -> Bool, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if condition() { return true }
            if Task.isCancelled || ContinuousClock.now >= deadline { return false }
            let id = nextID.add(1, ordering: .relaxed).newValue
            slots.withLock { slots in
                slots[id] = .pending
                armed.store(true, ordering: .sequentiallyConsistent)
            }
            // Registered first, then looked: a change made before `armed` was raised is seen here.
            if condition() {
                forget(id)
                return true
            }
            // The timeout races the notification: whichever comes first resumes the waiter.
            let timer = Task { [self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                wake(id)
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = slots.withLock { slots -> Bool in
                        guard case .pending? = slots[id] else { return true }
                        slots[id] = .waiting(continuation)
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                wake(id)
            }
            timer.cancel()
            forget(id)
        }
    }

    /// Resumes one waiter (its timeout, or its task's cancellation).
    private func wake(_ id: UInt64) {
        let continuation = slots.withLock { slots -> CheckedContinuation<Void, Never>? in
            switch slots[id] {
            case .waiting(let continuation)?:
                slots[id] = .woken
                return continuation
            case .pending?:
                slots[id] = .woken
                return nil
            case .woken?, nil:
                return nil
            }
        }
        continuation?.resume()
    }

    private func forget(_ id: UInt64) {
        slots.withLock { slots in
            slots[id] = nil
            if slots.isEmpty { armed.store(false, ordering: .sequentiallyConsistent) }
        }
    }
}
