/// A run that this process does not hold, as the storage shows it.
public enum StoredEvents: Sendable, Equatable {
    /// It ended: its events after the id asked for (none when the client has them all).
    case finished([RunEvent])
    /// It goes on in another process: `follow` it.
    case running
}
