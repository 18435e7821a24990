import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT as an async sequence. A handler (async-signal-safe: one `write`)
/// puts each signal on a pipe whichever thread it interrupts; a thread reads the pipe.
enum TerminationSignals {
    // Set once in `install()`, before the handler can run; only read afterwards.
    private nonisolated(unsafe) static var pipeFDs: [Int32] = [-1, -1]
    private nonisolated(unsafe) static var writeFD: Int32 = -1

    /// Installs the handlers. Call once, first thing in `main`.
    static func install() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        pipeFDs = fds
        writeFD = fds[1]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in
            var byte = UInt8(truncatingIfNeeded: signal)
            _ = write(TerminationSignals.writeFD, &byte, 1)
        }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
    }

    /// Each signal as it arrives.
    static func stream() -> AsyncStream<Int32> {
        let readFD = pipeFDs[0]
        return AsyncStream { continuation in
            let thread = Thread {
                var byte: UInt8 = 0
                while true {
                    let count = read(readFD, &byte, 1)
                    if count == 1 { continuation.yield(Int32(byte)) } else if count < 0 && errno == EINTR { continue } else { break }
                }
                continuation.finish()
            }
            thread.name = "flowd-signals"
            thread.start()
        }
    }
}
