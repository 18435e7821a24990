import FlowdJSON

/// A run's memory writes, applied together by `MemoryStore.commit` or not at all.
///
/// Building one touches nothing; a transaction that is dropped was simply never
/// committed. Operations apply in the order they were added.
public struct MemoryTransaction: Sendable, Hashable {
    public enum Operation: Sendable, Hashable {
        case set(MemoryScope, key: String, value: JSONValue)
        case delete(MemoryScope, key: String)

        public var scope: MemoryScope {
            switch self {
            case .set(let s, _, _), .delete(let s, _): s
            }
        }

        public var key: String {
            switch self {
            case .set(_, let k, _), .delete(_, let k): k
            }
        }
    }

    public private(set) var operations: [Operation] = []

    public init() {}

    public mutating func set(_ scope: MemoryScope, _ key: String, _ value: JSONValue) {
        operations.append(.set(scope, key: key, value: value))
    }

    public mutating func delete(_ scope: MemoryScope, _ key: String) {
        operations.append(.delete(scope, key: key))
    }

    public var isEmpty: Bool { operations.isEmpty }
}
