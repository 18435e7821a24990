import Glibc

/// A failure of a store: what failed, on which file, and the system's reason.
///
/// `kind` tells the caller what to do: `.invalidKey`/`.invalidID`/`.invalidRecord` are the caller's
/// fault (nothing touched the file system), `.io` and `.corrupt` are the machine's,
/// `.closed` means the store was closed, `.failed` that an earlier write failed and
/// the store refuses writes until it is reopened (its file state is unknown), `.unavailable`
/// that the database cannot be reached now (try again later), `.cancelled` that the run whose
/// finish a memory transaction carries was cancelled first (by another replica): nothing was written.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case io, invalidKey, invalidID, invalidRecord, corrupt, closed, failed, locked, unavailable, cancelled
    }

    public let kind: Kind
    /// The operation that failed (`"open"`, `"fdatasync"`, `"rename"`, …) or a short message.
    public let operation: String
    /// The file or directory concerned, when there is one.
    public let path: String?
    /// The `errno` value, when a system call failed.
    public let errno: Int32?

    public init(_ kind: Kind, _ operation: String, path: String? = nil, errno: Int32? = nil) {
        self.kind = kind
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// A failed system call, with the current `errno`.
    static func system(_ operation: String, path: String?, errno code: Int32 = Glibc.errno) -> StoreError {
        StoreError(.io, operation, path: path, errno: code)
    }

    /// `strerror` of `errno`.
    public var errnoText: String? {
        errno.map { String(cString: strerror($0)) }
    }

    public var description: String {
        var s = "\(operation)"
        if let path { s += " \(path)" }
        if let errnoText { s += ": \(errnoText)" }
        if kind != .io { s += " (\(kind.rawValue))" }
        return s
    }
}
