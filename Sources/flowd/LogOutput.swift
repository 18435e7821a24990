import Foundation
import ServiceLifecycle
import FlowdSync

/// Log lines on stderr, buffered: handlers append whole lines under a lock, and a thread of
/// its own writes what has gathered every 50 ms (or sooner past 64 KiB) with one `write(2)`,
/// so a line per request costs no system call and a slow stderr never blocks the cooperative
/// pool. Lines never interleave; at most the last 50 ms of lines can be lost if the process
/// is killed.
///
/// As a service of `serve`'s group it is the last to stop: its `run` waits for the group's
/// graceful shutdown, which reaches it once everything before it in the shutdown order has
/// returned (and logged), then writes what is left.
final class LogOutput: Service {
    static let shared = LogOutput()

    private let buffer = Locked<[UInt8]>([])
    /// Held while a batch is taken and written, so that two flushes (the thread's and the
    /// final one) cannot write their batches out of order.
    private let writing = Locked<Void>(())
    private let wake = DispatchSemaphore(value: 0)
    private static let batchBytes = 64 << 10

    private init() {
        let thread = Thread { [self] in
            while true {
                _ = wake.wait(timeout: .now() + .milliseconds(50))
                flush()
            }
        }
        thread.name = "flowd-log"
        thread.start()
    }

    func append(_ line: [UInt8]) {
        let large = buffer.withLock { pending -> Bool in
            pending.append(contentsOf: line)
            return pending.count > LogOutput.batchBytes
        }
        if large { wake.signal() }
    }

    /// Until the group's graceful shutdown reaches the log writer (or the task is cancelled);
    /// then writes what is left.
    func run() async {
        try? await gracefulShutdown()
        flush()
    }

    /// Writes everything appended so far (also called at exit).
    func flush() {
        writing.withLock { _ in
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
}
