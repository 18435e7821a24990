#if canImport(Glibc)
import Glibc
#endif

/// A value behind a `pthread_mutex_t`: `withLock` is the only way to it.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer does not see Mutex's
/// futex-based hand-off on Linux (Swift 6.3: contended `Mutex` accesses are reported as
/// races, a false positive), while it understands pthread mutexes; so `scripts/tsan` can
/// tell real races from noise. Uncontended, both cost one atomic exchange.
public final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only reached inside `withLock`, under `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    @inlinable
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        lock()
        defer { unlock() }
        return try body(&value)
    }

    @usableFromInline func lock() { pthread_mutex_lock(mutex) }
    @usableFromInline func unlock() { pthread_mutex_unlock(mutex) }
}
