/// The three memory scopes: `isolated` (keys `<agent_id>:<story_id>`), `shared`
/// (keys `<story_id>`) and `global`.
public enum MemoryScope: String, CaseIterable, Sendable, Hashable {
    case isolated, shared, global

    var index: Int {
        switch self {
        case .isolated: 0
        case .shared: 1
        case .global: 2
        }
    }
}
