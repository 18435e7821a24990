import FlowdJSON
import Foundation
import Logging
import ServiceLifecycle
import Stores
import FlowdSync
import Synchronization

/// Log lines on stderr, buffered: handlers append whole lines under a lock, and the writer
/// (`run`, a service of `serve`'s group; a task of its own in `flowd run`) writes what has
/// gathered every 50 ms, or as soon as it passes 64 KiB, with one `write(2)`, so a line per
/// request costs no system call. Lines never interleave; at most the last 50 ms of lines can
/// be lost if the process is killed. The writer is the last service to stop: it writes until
/// everything before it in the shutdown order has logged.
final class LogOutput: Service {
    static let shared = LogOutput()

    private let buffer = Locked<[UInt8]>([])
    /// The writer waits here for a full buffer or its shutdown, at most 50 ms (a timer, not a poll:
    /// lines are batched for that long on purpose).
    private let wake = WaitList()
    private let stopping = Atomic<Bool>(false)
    private static let batchBytes = 64 << 10

    private init() {}

    func append(_ line: [UInt8]) {
        let large = buffer.withLock { pending -> Bool in
            pending.append(contentsOf: line)
            return pending.count > LogOutput.batchBytes
        }
        if large { wake.notify() }
    }

    /// Writes every 50 ms or on a full buffer, until the group's graceful shutdown (or the
    /// task's cancellation); then writes what is left.
    func run() async {
        await withGracefulShutdownHandler {
            while !stopping.load(ordering: .sequentiallyConsistent), !Task.isCancelled {
                _ = await wake.wait(until: {
                    stopping.load(ordering: .sequentiallyConsistent)
                        || buffer.withLock { $0.count > LogOutput.batchBytes }
                }, timeout: .milliseconds(50))
                flush()
            }
        } onGracefulShutdown: { [self] in
            stopping.store(true, ordering: .sequentiallyConsistent)
            wake.notify()
        }
        flush()
    }

    /// Writes everything appended so far (also called at exit).
    func flush() {
        let bytes = buffer.withLock { pending -> [UInt8] in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }
}
