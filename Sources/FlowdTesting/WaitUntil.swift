/// Polls `condition` until it holds, for a state the test cannot be told about (a file's
/// appearance, a record's status, a line in a child's log); throws once `timeout` (scaled,
/// see `scaled`) has passed. `condition` is evaluated at least once, and once more at the
/// deadline, so a slow machine fails only when the state really never came.
public func waitUntil(_ what: String, timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(20),
                      _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + scaled(timeout)
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            if try await condition() { return }
            throw TestClientError("timed out after \(scaled(timeout)) waiting for \(what)")
        }
        try await Task.sleep(for: interval)
    }
}
