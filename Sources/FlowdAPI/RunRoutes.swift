import Agents
import FlowdHTTP
import FlowdJSON
import Foundation
import FlowdSync
import Stores

/// `POST /run`, the background runs under `/runs`, and `GET /flows`.
struct RunRoutes: Sendable {
    let catalog: AgentCatalog
    let runs: RunService
    let lifecycle: Lifecycle
    let maxInput: Int

    func register(on router: inout Router) {
        router.post("/run") { request in try await run(request) }
        router.post("/runs") { request in try await startInBackground(request) }
        router.get("/runs") { request in try await list(request) }
        router.get("/runs/{id}") { request in try await record(request) }
        router.get("/runs/{id}/events") { request in try await events(request) }
        router.post("/runs/{id}/cancel") { request in try await cancel(request) }
        router.post("/runs/{id}/retry") { request in try await retry(request) }
        router.get("/flows") { _ in flows() }
    }

    /// What the checks before a run's start found.
    private enum Admitted {
        case new(RunRequest)
        /// The idempotency key names a run started by the same request before.
        case replay(RunRecord)
    }

    /// Body checks (415, 400, 422), then 503 while draining, unless the request's key names a
    /// run already: that one is answered even while draining.
    private func admit(_ request: HTTPRequest, route: String) async throws -> Admitted {
        let run = try RunRequest.decode(request, catalog: catalog, maxInput: maxInput, tokensQuery: route == "run")
        if lifecycle.isDraining {
            if let key = run.idempotencyKey,
               let earlier = try await runs.previousRun(like: RunRecord(
                    runID: "", flow: run.flow, storyID: run.storyID, status: .queued, createdAt: Date(), input: run.input,
                    idempotency: IdempotencyKey(key: key, route: route))) {
                return .replay(earlier)
            }
            throw HTTPError.unavailable("Server is draining")
        }
        return .new(run)
    }

    /// The JSON answer once the run ends, or (`Accept: text/event-stream`) its events as they happen.
    private func run(_ request: HTTPRequest) async throws -> HTTPResponse {
        let streaming = ServerSentEvents.wanted(by: request)
        let body: RunRequest
        switch try await admit(request, route: "run") {
        case .replay(let earlier):
            // `admit` checked the query already.
            var checked: [ValidationIssue] = []
            return try await replay(earlier, streaming: streaming, tokens: RequestValidation.tokensQuery(request, issues: &checked))
        case .new(let run): body = run
        }
        if streaming {
            switch try await runs.start(body, route: "run") {
            case .replay(let earlier): return try await replay(earlier, streaming: true, tokens: body.tokens)
            case .started(let run):
                let follower = EventSubscriber(heartbeat: runs.heartbeat, tokens: body.tokens)
                run.follow(follower, after: 0)
                var response = follower.response
                response.headers.append("X-Run-ID", run.runID)
                return response
            }
        }
        // On this request's task: cancelling it (the drain timeout) cancels the run.
        switch try await runs.runInline(body) {
        case .replay(let earlier):
            return try await replay(earlier, streaming: false, tokens: false)
        case .ran(let runID, let outcome):
            let draining = lifecycle.isDraining
            return try RunRoutes.withRunHeaders(runID: runID) { () throws(HTTPError) in
                try RunRoutes.answer(outcome, runID: runID, draining: draining)
            }
        }
    }

    /// `POST /runs`: 202 with the id once the record is durable; the run goes on without the client.
    private func startInBackground(_ request: HTTPRequest) async throws -> HTTPResponse {
        switch try await admit(request, route: "runs") {
        case .replay(let earlier): return accepted(earlier, replayed: true)
        case .new(let body):
            switch try await runs.start(body, route: "runs") {
            case .replay(let earlier): return accepted(earlier, replayed: true)
            case .started(let run): return accepted(run.record, replayed: false)
            }
        }
    }

    /// `POST /runs/{id}/retry`: a new run from the failed step of a failed or cancelled one.
    private func retry(_ request: HTTPRequest) async throws -> HTTPResponse {
        var issues: [ValidationIssue] = []
        let id = try RequestValidation.pathID(request)
        let key = RequestValidation.idempotencyKey(request, issues: &issues)
        if !issues.isEmpty { throw HTTPError.unprocessable(issues) }
        switch try await runs.retry(id, idempotencyKey: key, draining: lifecycle.isDraining) {
        case .replay(let earlier): return accepted(earlier, replayed: true)
        case .started(let run): return accepted(run.record, replayed: false)
        }
    }

    /// 202 `{"run_id","status"}` with `Location` and `X-Run-ID`: `queued` for a run just
    /// started, the status now of a replayed one (with `Idempotent-Replayed`).
    private func accepted(_ record: RunRecord, replayed: Bool) -> HTTPResponse {
        var headers = HTTPHeaders([("Location", "/runs/\(record.runID)"), ("X-Run-ID", record.runID)])
        if replayed { headers.append("Idempotent-Replayed", "true") }
        let status = replayed ? record.status : .queued
        return .json(HTTPStatus.accepted, ["run_id": .string(record.runID), "status": .string(status.rawValue)], headers: headers)
    }

    /// A `/run` whose key names an earlier run: that run's answer, once it ended (or its
    /// events from the first, streamed), with `Idempotent-Replayed: true`.
    private func replay(_ earlier: RunRecord, streaming: Bool, tokens: Bool) async throws -> HTTPResponse {
        let runID = earlier.runID
        var response: HTTPResponse
        if streaming {
            response = try await eventStream(runID, after: 0, tokens: tokens)
            response.headers.append("X-Run-ID", runID)
        } else {
            guard let terminal = try await terminalEvent(of: runID) else { throw HTTPError.notFound("Run '\(runID)' not found") }
            do {
                response = try RunRoutes.withRunHeaders(runID: runID) { () throws(HTTPError) in try RunRoutes.answer(terminal: terminal) }
            } catch {
                var error = error
                error.headers.append("Idempotent-Replayed", "true")
                throw error
            }
        }
        response.headers.append("Idempotent-Replayed", "true")
        return response
    }

    /// The terminal event of a run, once it has one (waiting for a run still going).
    private func terminalEvent(of runID: String) async throws -> RunEvent? {
        if let run = runs.liveRun(runID) {
            await run.waitForConclusion()
            return run.terminalEvent
        }
        switch try await runs.backend.storedEvents(runID, after: 0) {
        case nil: return nil
        case .finished(let events)?: return events.last
        case .running?:
            let terminal = Locked<RunEvent?>(nil)
            await runs.backend.follow(runID, after: 0, send: { event in if event.isTerminal { terminal.withLock { $0 = event } } },
                                      isClosed: { false })
            return terminal.withLock { $0 }
        }
    }

    /// `GET /runs`: `{"runs": [records, newest first], "next_cursor": "…" or null}`.
    private func list(_ request: HTTPRequest) async throws -> HTTPResponse {
        let query = try RunListQuery.decode(request)
        let (records, next) = try await runs.list(query)
        return .json(HTTPStatus.ok, ["runs": .array(records.map(\.json)), "next_cursor": next.map { JSONValue.string($0.text) } ?? .null])
    }

    private func record(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try RequestValidation.pathID(request)
        guard let record = try await runs.record(id) else { throw HTTPError.notFound("Run '\(id)' not found") }
        return .json(HTTPStatus.ok, record.json)
    }

    /// Replays the events after `Last-Event-ID`, then follows a live run to its end; 204 when
    /// a finished run has nothing after it.
    /// With `tokens=true`, a live run's `token` events too (another process's run sends none:
    /// tokens are not stored).
    private func events(_ request: HTTPRequest) async throws -> HTTPResponse {
        var issues: [ValidationIssue] = []
        let id = request.parameters["id"] ?? ""
        if !Identifier.isValidID(id) {
            issues.append(.patternMismatch(["path", "id"], input: id, pattern: RequestValidation.idPattern))
        }
        let tokens = RequestValidation.tokensQuery(request, issues: &issues)
        if !issues.isEmpty { throw HTTPError.unprocessable(issues) }
        let after = request.headers["Last-Event-ID"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
        return try await eventStream(id, after: after, tokens: tokens)
    }

    private func eventStream(_ id: String, after: Int, tokens: Bool) async throws -> HTTPResponse {
        if let run = runs.liveRun(id) {
            let follower = EventSubscriber(heartbeat: runs.heartbeat, tokens: tokens)
            if run.follow(follower, after: after) { return follower.response }
            follower.finish()
            return HTTPResponse(status: HTTPStatus.noContent)
        }
        switch try await runs.backend.storedEvents(id, after: after) {
        case nil:
            throw HTTPError.notFound("Run '\(id)' not found")
        case .finished(let events)?:
            if events.isEmpty { return HTTPResponse(status: HTTPStatus.noContent) }
            return HTTPResponse(status: HTTPStatus.ok, headers: ServerSentEvents.headers, body: .bytes(ServerSentEvents.encode(events)))
        case .running?:
            // Another process's run: its stored events, then live ones as its owner stores them.
            let follower = EventSubscriber(heartbeat: runs.heartbeat)
            let backend = runs.backend
            Task {
                await backend.follow(id, after: after, send: { follower.send($0) }, isClosed: { follower.stream.isClosed })
                follower.finish()
            }
            return follower.response
        }
    }

    /// 202 for a live run (it stops at its next await) or one already cancelled; 409 for a
    /// run that ended otherwise.
    private func cancel(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try RequestValidation.pathID(request)
        if let run = runs.liveRun(id) {
            if case .accepted(let status) = run.cancel() {
                return .json(HTTPStatus.accepted, ["run_id": .string(id), "status": .string(status.rawValue)])
            }
            // Its success is being committed, or its end was decided: answer as it ends.
            await run.waitForConclusion()
        }
        // Another process's: it sees the request within a second (NOTIFY, or its poll).
        if let record = try await runs.backend.requestCancel(id) {
            return .json(HTTPStatus.accepted, ["run_id": .string(id), "status": .string(record.status.rawValue)])
        }
        guard let record = try await runs.record(id) else { throw HTTPError.notFound("Run '\(id)' not found") }
        guard record.status == .cancelled else {
            throw HTTPError(HTTPStatus.conflict, "Run already \(record.status.rawValue)")
        }
        return .json(HTTPStatus.accepted, ["run_id": .string(id), "status": "cancelled"])
    }

    /// `body`'s answer, or error, with the run's `X-Run-ID`.
    static func withRunHeaders(runID: String, _ body: () throws(HTTPError) -> HTTPResponse) throws(HTTPError) -> HTTPResponse {
        do {
            var response = try body()
            response.headers.append("X-Run-ID", runID)
            return response
        } catch {
            var error = error
            error.headers.append("X-Run-ID", runID)
            throw error
        }
    }

    /// The `/run` answer a run's terminal event stands for.
    static func answer(terminal: RunEvent) throws(HTTPError) -> HTTPResponse {
        switch terminal.name {
        case RunEventName.done:
            return .json(HTTPStatus.ok, terminal.data)
        case RunEventName.cancelled:
            throw HTTPError(HTTPStatus.conflict, "Run cancelled")
        default:
            let status = terminal.data["status"]?.intValue.map { Int($0) } ?? HTTPStatus.internalError
            let detail = terminal.data["detail"]?.stringValue ?? ""
            if status == HTTPStatus.unavailable { throw HTTPError.unavailable(detail) }
            throw HTTPError(status, detail)
        }
    }

    /// The `/run` answer for an outcome.
    static func answer(_ outcome: RunOutcome, runID: String, draining: Bool) throws(HTTPError) -> HTTPResponse {
        switch outcome {
        case .succeeded(let result):
            // Every successful /run answers this: its bytes are written directly.
            var body: [UInt8] = []
            body.reserveCapacity(result.utf8.count + runID.utf8.count + 48)
            body.append(contentsOf: #"{"result":"#.utf8)
            JSONValue.appendString(result, to: &body)
            body.append(contentsOf: #","pending_docs":null,"run_id":"#.utf8)
            JSONValue.appendString(runID, to: &body)
            body.append(UInt8(ascii: "}"))
            return .json(HTTPStatus.ok, body)
        case .pendingDocuments(let ids):
            return .json(HTTPStatus.ok, ["result": .null, "pending_docs": .array(ids.map(JSONValue.string)), "run_id": .string(runID)])
        case .cancelled where draining:
            // Cut off by the drain timeout: the client may retry elsewhere.
            throw HTTPError.unavailable("Run cancelled: the server is shutting down")
        case .failed, .cancelled, .storeFailed:
            let (status, detail) = outcome.answer
            if status == HTTPStatus.unavailable { throw HTTPError.unavailable(detail ?? "") }
            throw HTTPError(status, detail ?? "")
        }
    }

    private func flows() -> HTTPResponse {
        let flows = catalog.flowNames.compactMap { catalog.flow(named: $0) }.map { flow -> JSONValue in
            .object([
                "name": .string(flow.name),
                "agents": .array(flow.agentIDs.map(JSONValue.string)),
                "requires": .array(flow.requiredDocuments.map(JSONValue.string)),
                "start": .string(flow.start),
                "edges": .array(flow.edges.map { edge in
                    ["from": .string(edge.from), "action": .string(edge.action), "to": .string(edge.to ?? "end")]
                }),
            ])
        }
        return .json(HTTPStatus.ok, ["flows": .array(flows)])
    }
}
