import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT, delivered to one thread that waits for them with `sigwait`.
enum TerminationSignals {
    private static func set() -> sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        return signals
    }

    /// Blocks both signals in the calling thread and every thread it starts later.
    static func block() {
        var signals = set()
        pthread_sigmask(SIG_BLOCK, &signals, nil)
    }

    /// Each signal as it arrives.
    static func stream() -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let thread = Thread {
                var signals = set()
                while true {
                    var signal: Int32 = 0
                    if sigwait(&signals, &signal) == 0 { continuation.yield(signal) }
                }
            }
            thread.name = "flowd-signals"
            thread.start()
        }
    }
}
