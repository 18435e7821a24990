import FlowdHTTP
import Stores

/// How a run ended, as `/run` answers it.
public enum RunOutcome: Sendable, Equatable {
    case succeeded(result: String)
    /// Documents still missing, in flow order; nothing ran and nothing was written.
    case pendingDocuments([String])
    /// `<agent>: <message>`: an agent failed after its retries, timed out, or a loop ran too long.
    case failed(detail: String)
    case cancelled
    /// The stores failed; nothing of the run was written.
    case storeFailed(StoreError)

    /// The status and detail of the `/run` JSON answer (200 has no detail).
    var answer: (status: Int, detail: String?) {
        switch self {
        case .succeeded, .pendingDocuments: (HTTPStatus.ok, nil)
        case .failed(let detail): (HTTPStatus.internalError, "Flow execution failed: \(detail)")
        case .cancelled: (HTTPStatus.conflict, "Run cancelled")
        case .storeFailed(let error): (error.status, error.detail)
        }
    }
}
