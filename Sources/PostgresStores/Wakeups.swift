import FlowdSync

/// Tasks waiting for a notification by key (`s:<story>`, `e:<run>`), woken by the listener.
///
/// A waiter registers *before* it looks at the database and waits after, so a notification
/// that arrives in between is not lost; every wait also has a timeout, the poll that covers
/// notifications the database never delivered (a listener reconnecting).
final class Wakeups: Sendable {
    final class Ticket: Sendable {
        let key: String
        private struct State {
            var fired = false
            var continuation: CheckedContinuation<Void, Never>?
        }
        private let state = Locked(State())

        init(key: String) { self.key = key }

        func fire() {
            let continuation = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.fired = true
                defer { s.continuation = nil }
                return s.continuation
            }
            continuation?.resume()
        }

        private func waitFired() async {
            await withCheckedContinuation { continuation in
                let now = state.withLock { s -> Bool in
                    if s.fired { return true }
                    s.continuation = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        }

        /// Returns when fired or when the task is cancelled: for a notification this process
        /// sends itself, which cannot be lost, so no poll has to stand behind it.
        func wait() async {
            await withTaskCancellationHandler {
                await waitFired()
            } onCancel: {
                fire()
            }
        }

        /// Returns when fired, after `timeout`, or when the task is cancelled.
        func wait(timeout: Duration) async {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    self.fire()
                }
                group.addTask { await self.waitFired() }
                await group.next()
                group.cancelAll()
                self.fire()
            }
        }
    }

    private let waiting = Locked<[String: [ObjectIdentifier: Ticket]]>([:])

    func register(_ key: String) -> Ticket {
        let ticket = Ticket(key: key)
        waiting.withLock { $0[key, default: [:]][ObjectIdentifier(ticket)] = ticket }
        return ticket
    }

    func unregister(_ ticket: Ticket) {
        waiting.withLock { waiting in
            waiting[ticket.key]?[ObjectIdentifier(ticket)] = nil
            if waiting[ticket.key]?.isEmpty == true { waiting[ticket.key] = nil }
        }
    }

    func notify(_ key: String) {
        for ticket in waiting.withLock({ Array(($0[key] ?? [:]).values) }) { ticket.fire() }
    }

    /// Wakes every waiter (notifications may have been missed).
    func notifyAll() {
        for ticket in waiting.withLock({ $0.values.flatMap(\.values) }) { ticket.fire() }
    }
}
