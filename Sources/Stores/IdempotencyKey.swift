/// An `Idempotency-Key` header as kept with its run's record: the key, and the route the
/// request came to (`run`, `runs` or `retry`), for telling a replay from a reuse.
public struct IdempotencyKey: Sendable, Hashable {
    public var key: String
    public var route: String

    public init(key: String, route: String) {
        self.key = key
        self.route = route
    }
}
