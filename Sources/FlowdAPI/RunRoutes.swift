import Agents
import FlowdHTTP
import Foundation
import Stores

/// `POST /run` and `GET /flows`.
struct RunRoutes: Sendable {
    let catalog: AgentCatalog
    let executor: RunExecutor
    let lifecycle: Lifecycle
    let maxInput: Int

    func register(on router: inout Router) {
        router.post("/run") { request in try await run(request) }
        router.get("/flows") { _ in flows() }
    }

    private func run(_ request: HTTPRequest) async throws -> HTTPResponse {
        let run = try RunRequest.decode(request, knownFlows: { catalog.flow(named: $0) != nil }, maxInput: maxInput)
        if lifecycle.isDraining { throw HTTPError.unavailable("Server is draining") }
        let runID = RunIDs.make()
        let outcome = await executor.execute(run)
        return try RunRoutes.answer(outcome, runID: runID, draining: lifecycle.isDraining)
    }

    /// The `/run` answer for an outcome (also the body of a stream's terminal event).
    static func answer(_ outcome: RunOutcome, runID: String, draining: Bool) throws(HTTPError) -> HTTPResponse {
        switch outcome {
        case .succeeded(let result):
            return .json(HTTPStatus.ok, ["result": .string(result), "pending_docs": .null, "run_id": .string(runID)])
        case .pendingDocuments(let ids):
            return .json(HTTPStatus.ok, ["result": .null, "pending_docs": .array(ids.map(JSONValue.string)), "run_id": .string(runID)])
        case .failed(let detail):
            throw HTTPError(HTTPStatus.internalError, "Flow execution failed: \(detail)")
        case .cancelled:
            // Cut off by the drain timeout: the client may retry elsewhere.
            if draining { throw HTTPError.unavailable("Run cancelled: the server is shutting down") }
            throw HTTPError(HTTPStatus.conflict, "Run cancelled")
        case .busy:
            throw HTTPError.unavailable("Too many runs in flight")
        case .storeFailed(let detail):
            throw HTTPError(HTTPStatus.internalError, "Storage failed: \(detail)")
        }
    }

    private func flows() -> HTTPResponse {
        let flows = catalog.flowNames.compactMap { catalog.flow(named: $0) }.map { flow -> JSONValue in
            .object([
                "name": .string(flow.name),
                "agents": .array(flow.agentIDs.map(JSONValue.string)),
                "requires": .array(flow.requiredDocuments.map(JSONValue.string)),
            ])
        }
        return .json(HTTPStatus.ok, ["flows": .array(flows)])
    }
}

/// Run ids: random, valid identifiers (they appear in `/runs/{id}`).
enum RunIDs {
    static func make() -> String { UUID().uuidString.lowercased() }
}

/// The `/run` body for an outcome, for `flowd run`.
public enum RunBody {
    /// The JSON body `/run` would answer, and the exit status of `flowd run` (0 or 1).
    public static func render(_ outcome: RunOutcome, runID: String) -> (body: [UInt8], exitStatus: Int32) {
        do {
            let response = try RunRoutes.answer(outcome, runID: runID, draining: false)
            guard case .bytes(let body) = response.body else { return ([], 0) }
            return (body, 0)
        } catch {
            return (error.body, 1)
        }
    }
}
