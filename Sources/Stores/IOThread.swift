import Foundation
import FlowdSync

/// A dedicated thread for blocking file work (write, fsync, rename), so that it never
/// runs on Swift's cooperative pool.
///
/// Jobs run one at a time, in submission order. The thread ends when the `IOThread`
/// is released and its queue is empty.
final class IOThread: Sendable {
    /// What the thread shares with its owners; the thread keeps only this, not the `IOThread`.
    private final class Queue: Sendable {
        let jobs = Locked<(pending: [@Sendable () -> Void], stopped: Bool)>(([], false))
        let signal = DispatchSemaphore(value: 0)

        func loop() {
            while true {
                signal.wait()
                let job: (@Sendable () -> Void)? = jobs.withLock { state in
                    state.pending.isEmpty ? nil : state.pending.removeFirst()
                }
                if let job {
                    job()
                } else if jobs.withLock({ $0.stopped }) {
                    return
                }
            }
        }
    }

    private let queue = Queue()

    init(name: String) {
        let queue = self.queue
        let thread = Thread { queue.loop() }
        thread.name = name
        thread.start()
    }

    deinit {
        queue.jobs.withLock { $0.stopped = true }
        queue.signal.signal()
    }

    /// Runs `body` on the thread and returns its result; the calling task suspends meanwhile.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(StoreError) -> T) async throws(StoreError) -> T {
        let result: Result<T, StoreError> = await withCheckedContinuation { continuation in
            let job: @Sendable () -> Void = {
                do throws(StoreError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            queue.jobs.withLock { $0.pending.append(job) }
            queue.signal.signal()
        }
        return try result.get()
    }
}
