import Synchronization

/// The server's phase as probes and new work see it. Only ever moves forward.
public final class Lifecycle: Sendable {
    public enum Phase: Int, Sendable {
        case serving = 0
        case draining = 1
    }

    private let phase = Atomic<Int>(Phase.serving.rawValue)

    public init() {}

    public var current: Phase { Phase(rawValue: phase.load(ordering: .acquiring)) ?? .draining }
    public var isDraining: Bool { current == .draining }

    /// From now on `/readyz` and new runs answer 503 with `Retry-After`.
    public func beginDrain() {
        phase.store(Phase.draining.rawValue, ordering: .releasing)
    }
}
