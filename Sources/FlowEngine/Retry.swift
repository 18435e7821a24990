/// PocketFlow's retry loop: up to `maxRetries` attempts in total, `wait` between
/// attempts but not after the last, then `fallback` with the last error.
///
/// Cancellation is never retried nor handed to the fallback: it propagates at once.
@inlinable
func withRetries<R: Sendable>(
    maxRetries: Int,
    wait: Duration,
    attempt body: (Int) async throws -> R,
    fallback: (any Error, Int) async throws -> R
) async throws -> R {
    let attempts = max(1, maxRetries)
    var attempt = 1
    while true {
        do {
            return try await body(attempt)
        } catch {
            if error is CancellationError || Task.isCancelled { throw error }
            if attempt >= attempts { return try await fallback(error, attempt) }
        }
        if wait > .zero { try await Task.sleep(for: wait) }
        attempt += 1
    }
}
