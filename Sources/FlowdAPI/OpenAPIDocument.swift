import Stores

/// The OpenAPI 3.1 description of the HTTP API, served as `GET /openapi.json`.
///
/// It describes what the handlers answer, status by status, error bodies and the SSE answers
/// included, so that a schema-driven fuzzer (`scripts/fuzz-api`) finds nothing against a server
/// whose flows cannot fail. `OpenAPITests` compares its paths with the router's: a route that
/// changes changes here too. No `servers`: paths are relative to wherever the document was read.
public enum OpenAPIDocument {
    /// - Parameters:
    ///   - flowNames: the configured flows, the `enum` of a run's `flow`.
    ///   - maxInput: `--max-input`, the `maxLength` of a run's `input`.
    ///   - apiKeyRequired: `FLOWD_API_KEY` is set: a bearer token on every route but
    ///     `/healthz`, `/readyz` and `/`, which answer 401 without it.
    public static func make(flowNames: [String], maxInput: Int = 65_536, apiKeyRequired: Bool) -> JSONValue {
        let builder = Builder(secured: apiKeyRequired)
        var document: JSONObject = [
            "openapi": "3.1.0",
            "info": [
                "title": "flowd",
                "version": "1.0.0",
                "description": .string(info),
            ],
            "paths": .object(builder.paths()),
            "components": .object(components(flowNames: flowNames, maxInput: maxInput, secured: apiKeyRequired)),
        ]
        if apiKeyRequired { document["security"] = [["bearerAuth": []]] }
        return .object(document)
    }

    /// The `Idempotency-Key` header's pattern as JSON Schema (ECMA-262) writes it: 1 to 255
    /// characters of visible ASCII, %x21-7E.
    public static let idempotencyKeyPattern = ValidationIssue.idempotencyKeyPattern

    /// The pattern of `GET /runs`'s `cursor` (a `next_cursor` it answered): the server takes
    /// every string that matches it (`RunCursor.pattern`, where it is written).
    public static let runCursorPattern = RunCursor.pattern

    /// `GET /runs`'s `limit`: its bounds and its default.
    public static let runListLimits = 1...100
    public static let runListDefaultLimit = 20

    private static let info = """
        Runs PocketFlow-style agent flows. Every error answer is JSON `{"detail": …}`: a message, \
        or for 422 a FastAPI-style list of issues. When several answers apply, the first of these \
        wins: 401, 404/405, 413, 415, 400, 422, 503. An unknown path is 404; a known path with \
        another method 405 with `Allow` (`components/responses/MethodNotAllowed`). HEAD is served \
        wherever GET is, and declared there. A request whose \
        `Content-Length` exceeds `--max-body` is 413 on any route. While the server stops, a \
        request still running when the drain timeout ends is answered 503 with `Retry-After`.
        """

    // MARK: - Components

    private static func components(flowNames: [String], maxInput: Int, secured: Bool) -> JSONObject {
        let defaultFlowExists = flowNames.contains("default")
        var flow: JSONObject = [
            "type": "string",
            "enum": .array(flowNames.map(JSONValue.string)),
            "description": "A configured flow; an unknown one is 400.",
        ]
        if defaultFlowExists { flow["default"] = "default" }
        let runRequest: JSONValue = [
            "type": "object",
            "description": "Unknown fields are ignored.",
            "properties": [
                "flow": .object(flow),
                "input": [
                    "type": "string",
                    "maxLength": .int(Int64(maxInput)),
                    "description": "At most `--max-input` characters (Unicode scalars); longer is 422.",
                ],
                "story_id": [
                    "type": "string",
                    "pattern": .string(RequestValidation.idPattern),
                    "description": "Runs of one story never interleave; its agents' memory is kept under it.",
                ],
            ],
            // Without a `default` flow, a body that names none is 400: then `flow` is required.
            "required": defaultFlowExists ? ["input", "story_id"] : ["flow", "input", "story_id"],
        ]

        let nullableString: JSONValue = ["type": ["string", "null"]]
        var schemas: JSONObject = [
            "Detail": [
                "type": "object",
                "description": "An error answer.",
                "properties": ["detail": ["type": "string"]],
                "required": ["detail"],
            ],
            "ValidationError": [
                "type": "object",
                "description": "422: every issue found, FastAPI/pydantic style.",
                "properties": [
                    "detail": [
                        "type": "array",
                        "items": [
                            "type": "object",
                            "properties": [
                                "loc": ["type": "array", "items": ["type": ["string", "integer"]],
                                        "description": "`[\"body\", field]`, `[\"path\", parameter]` or `[\"header\", \"idempotency-key\"]`."],
                                "msg": ["type": "string"],
                                "type": [
                                    "type": "string",
                                    "description": "`missing`, `string_type`, `string_pattern_mismatch`, `string_too_long`, `enum`; `idempotency_key_reused` for an `Idempotency-Key` sent before with another request.",
                                ],
                                "input": ["description": "The offending value (left out when long)."],
                                "ctx": ["type": "object"],
                            ],
                            "required": ["loc", "msg", "type"],
                        ],
                    ],
                ],
                "required": ["detail"],
            ],
            "RunRequest": runRequest,
            // One object, not a `oneOf` of two: a generated client reads it as one model whose
            // `result` or `pending_docs` is null, and the bytes on the wire are the same.
            "RunAnswer": [
                "type": "object",
                "description": """
                    The flow ran: `result` is the output of the last agent that ran and `pending_docs` is \
                    null. Or documents are missing: `result` is null and `pending_docs` lists every \
                    missing id once, in flow order (no agent ran, no memory was written). Exactly one \
                    of the two is null.
                    """,
                "properties": [
                    "result": ["type": ["string", "null"], "description": "The output of the last agent that ran; null when documents are missing."],
                    "pending_docs": [
                        "type": ["array", "null"], "items": ["type": "string"], "minItems": 1,
                        "description": "The missing document ids, in flow order; null when the flow ran.",
                    ],
                    "run_id": ["type": "string", "description": "The run's id, under `/runs/{id}`."],
                ],
                "required": ["result", "pending_docs", "run_id"],
            ],
            "RunAccepted": [
                "type": "object",
                "properties": [
                    "run_id": ["type": "string"],
                    "status": [
                        "type": "string", "enum": .array(RunStatus.allCases.map { .string($0.rawValue) }),
                        "description": "`queued` for the run this request started; in a replay (`Idempotent-Replayed: true`), the status of the run the key started, now.",
                    ],
                ],
                "required": ["run_id", "status"],
            ],
            "CancelAccepted": [
                "type": "object",
                "properties": [
                    "run_id": ["type": "string"],
                    "status": ["type": "string", "enum": ["queued", "running", "cancelled"],
                               "description": "Where the run stood when the cancel was taken."],
                ],
                "required": ["run_id", "status"],
            ],
            "RunRecord": [
                "type": "object",
                "properties": [
                    "run_id": ["type": "string"],
                    "flow": ["type": "string"],
                    "story_id": ["type": "string"],
                    "status": ["type": "string", "enum": .array(RunStatus.allCases.map { .string($0.rawValue) })],
                    "result": nullableString,
                    "pending_docs": ["type": ["array", "null"], "items": ["type": "string"]],
                    "error": ["type": ["string", "null"], "description": "The detail of a failed or cancelled run."],
                    "created_at": ["type": "string", "format": "date-time"],
                    "finished_at": ["type": ["string", "null"], "format": "date-time"],
                    "resumed": [
                        "type": "integer", "minimum": 0,
                        "description": "How many times the run was taken up again after the process that had it queued or running died (or, with PostgreSQL, its replica's lease expired); 0 for a run never resumed.",
                    ],
                    "retry_of": [
                        "type": "string", "pattern": .string(RequestValidation.idPattern),
                        "description": "Only on a retry (`POST /runs/{id}/retry`): the failed or cancelled run it goes on from.",
                    ],
                    "usage": ["$ref": "#/components/schemas/Usage"],
                ],
                "required": ["run_id", "flow", "story_id", "status", "result", "pending_docs", "error", "created_at", "finished_at", "resumed", "usage"],
            ],
            "Usage": [
                "type": "object",
                "description": """
                    The tokens the run's `llm` steps used, as their provider reported them, summed over \
                    its steps (journaled ones included) and over every attempt that reported usage, a \
                    failed one too; a retry counts only the steps it ran. Steps without reported usage, \
                    and runs without `llm` steps, count zero.
                    """,
                "properties": [
                    "prompt_tokens": ["type": "integer", "minimum": 0],
                    "completion_tokens": ["type": "integer", "minimum": 0],
                ],
                "required": ["prompt_tokens", "completion_tokens"],
            ],
            "RunList": [
                "type": "object",
                "description": "`GET /runs`: a page of records, newest first.",
                "properties": [
                    "runs": ["type": "array", "items": ["$ref": "#/components/schemas/RunRecord"]],
                    "next_cursor": [
                        "type": ["string", "null"], "pattern": .string(runCursorPattern),
                        "description": "The `cursor` of the next page (opaque); null on the last page.",
                    ],
                ],
                "required": ["runs", "next_cursor"],
            ],
            "ProgressEvent": [
                "type": "object",
                "description": """
                    SSE `event: progress`. `resumed` is the first event a run sends after the process \
                    that ran it died (or, with PostgreSQL, its replica's lease expired) and another took \
                    it up: `agent` is the agent it goes on with, whose `started` follows, or null when \
                    no agent is left to run.
                    """,
                "properties": [
                    "run_id": ["type": "string"],
                    "agent": ["type": ["string", "null"], "description": "The agent; null only on `resumed`, when no agent is left to run."],
                    "status": ["type": "string", "enum": ["started", "completed", "failed", "resumed"]],
                    "timestamp": ["type": "string"],
                    "duration": ["type": "number", "description": "Seconds; on `completed` and `failed`."],
                ],
                "required": ["run_id", "agent", "status", "timestamp"],
            ],
            "ResultEvent": [
                "type": "object",
                "description": "SSE `event: result`: an agent's output, right after its `completed` progress.",
                "properties": ["run_id": ["type": "string"], "agent": ["type": "string"], "data": ["type": "string"]],
                "required": ["run_id", "agent", "data"],
            ],
            "TokenEvent": [
                "type": "object",
                "description": """
                    SSE `event: token`, only with `tokens=true`: a piece of an `llm` agent's output as \
                    its provider streams it. The pieces of one attempt, joined, are that attempt's \
                    output; a client that shows them starts over at the agent's next `progress` (an \
                    attempt that failed sends its pieces too). No `id:` line: not stored, not replayed; \
                    the agent's `result` event still carries its whole output.
                    """,
                "properties": ["run_id": ["type": "string"], "agent": ["type": "string"], "text": ["type": "string"]],
                "required": ["run_id", "agent", "text"],
            ],
            "DoneEvent": [
                "description": "SSE `event: done` (terminal): the `/run` 200 body.",
                "$ref": "#/components/schemas/RunAnswer",
            ],
            "ErrorEvent": [
                "type": "object",
                "description": "SSE `event: error` (terminal): the status and detail the JSON answer would give.",
                "properties": ["run_id": ["type": "string"], "status": ["type": "integer"], "detail": ["type": "string"]],
                "required": ["run_id", "status", "detail"],
            ],
            "CancelledEvent": [
                "type": "object",
                "description": "SSE `event: cancelled` (terminal).",
                "properties": ["run_id": ["type": "string"]],
                "required": ["run_id"],
            ],
            "FlowList": [
                "type": "object",
                "properties": [
                    "flows": [
                        "type": "array",
                        "items": [
                            "type": "object",
                            "properties": [
                                "name": ["type": "string"],
                                "agents": [
                                    "type": "array", "items": ["type": "string"],
                                    "description": "Agent ids in flow order: breadth-first from `start`, transitions in the order written.",
                                ],
                                "requires": ["type": "array", "items": ["type": "string"], "description": "Document ids in flow order."],
                                "start": ["type": "string", "description": "The first agent."],
                                "edges": [
                                    "type": "array",
                                    "description": """
                                        The flow's transitions in the order written in `flows.yaml`, so a client can \
                                        draw it: a sequence `[a, b]` has the one edge a -default-> b and none after \
                                        its last agent. Only transitions from the flow's agents.
                                        """,
                                    "items": ["$ref": "#/components/schemas/FlowEdge"],
                                ],
                            ],
                            "required": ["name", "agents", "requires", "start", "edges"],
                        ],
                    ],
                ],
                "required": ["flows"],
            ],
            "FlowEdge": [
                "type": "object",
                "description": "After `from` returns `action`, the flow goes on with `to`; `to` is `end` where the flow ends.",
                "properties": [
                    "from": ["type": "string"], "action": ["type": "string"],
                    "to": ["type": "string", "description": "An agent id of the flow, or `end`."],
                ],
                "required": ["from", "action", "to"],
            ],
            "DocumentInfo": [
                "type": "object",
                "properties": ["id": ["type": "string"], "bytes": ["type": "integer", "minimum": 0]],
                "required": ["id", "bytes"],
            ],
            "DocumentList": [
                "type": "object",
                "properties": ["docs": ["type": "array", "items": ["$ref": "#/components/schemas/DocumentInfo"]]],
                "required": ["docs"],
            ],
            "CompatibleDocument": [
                "type": "object",
                "description": "Unknown fields are ignored.",
                "properties": ["content": ["type": "string"]],
                "required": ["content"],
            ],
            "DocumentSaved": [
                "type": "object",
                "properties": ["message": ["const": "Document saved"], "id": ["type": "string"]],
                "required": ["message", "id"],
            ],
            "DocumentStatus": [
                "type": "object",
                "properties": ["exists": ["type": "boolean"]],
                "required": ["exists"],
            ],
            "MemoryWrite": [
                "type": "object",
                "description": "Unknown fields are ignored.",
                "properties": ["value": ["description": "Any JSON value."]],
                "required": ["value"],
            ],
            "MemoryEntry": [
                "type": "object",
                "properties": [
                    "scope": ["$ref": "#/components/schemas/Scope"],
                    "key": ["type": "string"],
                    "value": ["description": "Any JSON value."],
                ],
                "required": ["scope", "key", "value"],
            ],
            "MemoryList": [
                "type": "object",
                "properties": [
                    "scope": ["$ref": "#/components/schemas/Scope"],
                    "entries": [
                        "type": "array",
                        "items": [
                            "type": "object",
                            "properties": ["key": ["type": "string"], "value": ["description": "Any JSON value."]],
                            "required": ["key", "value"],
                        ],
                    ],
                ],
                "required": ["scope", "entries"],
            ],
            "Scope": ["type": "string", "enum": ["isolated", "shared", "global"]],
            "Status": [
                "type": "object",
                "properties": ["status": ["type": "string"]],
                "required": ["status"],
            ],
        ]
        // One event of a stream: its `event`, `id` and `data` fields, `data` holding JSON (the
        // `text/event-stream` schema's second branch, as a schema-driven tester reads each event).
        func event(_ name: String, _ data: String) -> JSONValue {
            [
                "type": "object",
                "properties": [
                    "event": ["const": .string(name)],
                    "id": ["type": "string", "pattern": "^[1-9][0-9]*$"],
                    "data": ["type": "string", "contentMediaType": "application/json",
                             "contentSchema": ["$ref": .string("#/components/schemas/\(data)")]],
                ],
                "required": ["event", "id", "data"],
            ]
        }
        // A token event has no `id:` line: it is not stored and not replayed.
        let token: JSONValue = [
            "type": "object",
            "properties": [
                "event": ["const": "token"],
                "data": ["type": "string", "contentMediaType": "application/json",
                         "contentSchema": ["$ref": "#/components/schemas/TokenEvent"]],
            ],
            "required": ["event", "data"],
            "not": ["required": ["id"]],
        ]
        schemas["RunEvent"] = [
            "description": "One Server-Sent Event of a run, as its `event`, `id` and `data` fields (`token` events, sent only with `tokens=true`, have no `id`).",
            "oneOf": [
                event("progress", "ProgressEvent"), event("result", "ResultEvent"), event("done", "DoneEvent"),
                event("error", "ErrorEvent"), event("cancelled", "CancelledEvent"), token,
            ],
        ]
        var components: JSONObject = [
            "schemas": .object(schemas),
            "parameters": [
                "RunID": pathParameter("id", pattern: RequestValidation.idPattern, "A run id."),
                "DocumentID": pathParameter("id", pattern: RequestValidation.idPattern, "A document id: the file `<docs dir>/<id>.md`."),
                "Scope": [
                    "name": "scope", "in": "path", "required": true,
                    "description": "`isolated` (keys `<agent_id>:<story_id>`), `shared` (keys `<story_id>`) or `global`; another is 422.",
                    "schema": ["$ref": "#/components/schemas/Scope"],
                ],
                "MemoryKey": pathParameter("key", pattern: RequestValidation.memoryKeyPattern, "A memory key."),
                "Tokens": [
                    "name": "tokens", "in": "query", "required": false,
                    "description": """
                        `true`: while an `llm` agent runs, the stream also sends its output as it comes, \
                        `event: token` (`TokenEvent`, no `id:`). Only meaningful with \
                        `Accept: text/event-stream`. `true` or `false` (as when it is absent); any other value \
                        is 422.
                        """,
                    "schema": ["type": "boolean"],
                ],
                "IdempotencyKey": [
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": """
                        Makes the request safe to repeat (the IETF draft of that name; Stripe's API). The \
                        first request with a key starts its run and keeps the key with the run's record, \
                        durably, before any answer, for as long as the record (`--run-retention`). A later \
                        request with the key and the same request (route, run id for a retry, `flow`, \
                        `input` and `story_id` after defaults) starts nothing and is answered, even while \
                        draining or at `--max-runs`, with the original run's answer and \
                        `Idempotent-Replayed: true`. The key with another request is 422 (`type` \
                        `idempotency_key_reused`); a key that does not match the pattern is 422 too (`loc` \
                        `["header", "idempotency-key"]`). An answer given before a run was admitted (400, \
                        401, 404, 409, 413, 415, 422, 503) stores no key.
                        """,
                    "schema": ["type": "string", "minLength": 1, "maxLength": 255, "pattern": .string(idempotencyKeyPattern)],
                ],
            ],
            "headers": [
                "RetryAfter": ["description": "Seconds to wait before retrying.", "schema": ["type": "integer"]],
                "RunID": [
                    "description": "The id of the run the answer is about (`/runs/<id>`).", "required": true,
                    "schema": ["type": "string", "pattern": .string(RequestValidation.idPattern)],
                ],
                "RunIDIfAdmitted": [
                    "description": "The id of the run the answer is about, when a run was admitted before it (`/runs/<id>`).",
                    "schema": ["type": "string", "pattern": .string(RequestValidation.idPattern)],
                ],
                "IdempotentReplayed": [
                    "description": "`true` when the answer is the replay of the run an earlier request with the same `Idempotency-Key` started; absent otherwise.",
                    "schema": ["type": "string", "enum": ["true"]],
                ],
            ],
            // 405 answers a method that no operation here declares, so no operation can answer
            // it: it is described here only. (The other routing answer, 404, is declared on every
            // operation whose path has a parameter: an empty segment matches no route.)
            "responses": [
                "MethodNotAllowed": [
                    "description": "A path that is routed, with a method that is not declared for it.",
                    "headers": [
                        "Allow": [
                            "description": "The methods of the path, `HEAD` with `GET`.", "required": true,
                            "schema": ["type": "string"],
                        ],
                    ],
                    "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Detail"]]],
                ],
            ],
        ]
        if secured {
            components["securitySchemes"] = [
                "bearerAuth": [
                    "type": "http", "scheme": "bearer",
                    "description": "`Authorization: Bearer <FLOWD_API_KEY>`, compared in constant time.",
                ],
            ]
        }
        return components
    }

    private static func pathParameter(_ name: String, pattern: String, _ description: String) -> JSONValue {
        [
            "name": .string(name), "in": "path", "required": true,
            "description": .string(description + " Not matching the pattern is 422 (it never reaches the file system)."),
            "schema": ["type": "string", "pattern": .string(pattern)],
        ]
    }

    // MARK: - Paths

    /// Builds the operations; `secured` adds the 401 answer to the routes that need the key.
    private struct Builder {
        let secured: Bool

        /// Every operation, with the routing answers: a `head` beside each `get` (the router
        /// answers HEAD with the GET handler, the body left out) and a 404 on each operation
        /// whose path has a parameter (an empty segment, as in `/docs/`, matches no route);
        /// and a 503 on each that touches storage (a `StoreError` while it cannot be reached).
        func paths() -> JSONObject {
            JSONObject(operationsByPath().map { path, item -> (String, JSONValue) in
                guard case .object(var methods) = item else { return (path, item) }
                for (method, operation) in methods where method != "parameters" {
                    methods[method] = withStorageUnavailable(operation)
                }
                if path.contains("{") {
                    for (method, operation) in methods where method != "parameters" {
                        methods[method] = withNoRoute(operation)
                    }
                }
                if let get = methods["get"] { methods["head"] = head(of: get) }
                return (path, .object(methods))
            })
        }

        private func withStorageUnavailable(_ operation: JSONValue) -> JSONValue {
            guard case .object(var op) = operation, case .object(var responses)? = op["responses"],
                  responses["500"] == storageFailed, responses["503"] == nil else { return operation }
            responses["503"] = unavailable("(`--store postgres`) The database is unreachable; nothing was stored.")
            op["responses"] = .object(byStatus(responses))
            return .object(op)
        }

        private func withNoRoute(_ operation: JSONValue) -> JSONValue {
            guard case .object(var op) = operation, case .object(var responses)? = op["responses"] else { return operation }
            if case .object(var notFound)? = responses["404"], case .string(let text)? = notFound["description"] {
                notFound["description"] = .string(text + " Also when a path parameter is empty (no route).")
                responses["404"] = .object(notFound)
            } else {
                responses["404"] = detail("No route: a path parameter is empty.")
            }
            op["responses"] = .object(byStatus(responses))
            return .object(op)
        }

        /// The `get` operation's statuses and headers, without the bodies.
        private func head(of get: JSONValue) -> JSONValue {
            guard case .object(var op) = get, case .string(let id)? = op["operationId"], case .string(let summary)? = op["summary"],
                  case .object(let responses)? = op["responses"]
            else { return get }
            op["operationId"] = .string(id + "Head")
            op["summary"] = .string(summary + " (headers only)")
            op["description"] = "`HEAD`: the status and headers that `GET` answers, without the body."
            op["responses"] = .object(JSONObject(responses.map { status, response -> (String, JSONValue) in
                guard case .object(var headers) = response else { return (status, response) }
                headers["content"] = nil
                headers["links"] = nil
                return (status, .object(headers))
            }))
            return .object(op)
        }

        private func byStatus(_ responses: JSONObject) -> JSONObject {
            JSONObject(responses.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }

        private func operationsByPath() -> JSONObject {
            [
                "/run": [
                    "post": operation(
                        "runFlow", tag: "runs",
                        summary: "Run a flow and answer its result (or, with `Accept: text/event-stream`, its events)",
                        description: """
                            Checks that every document the flow's agents need exists, runs the agents and \
                            commits their memory before answering. With `Accept: text/event-stream` the 200 \
                            is an event stream; an answer decided before the run starts (400, 401, 413, 415, \
                            422, 503) is still the JSON one. Every answer about an admitted run carries its id \
                            in `X-Run-ID` (a stream with its headers): a client cut off while it waits finds \
                            the outcome under `/runs/{id}`, or by sending the request again with its \
                            `Idempotency-Key`, which answers what the run answers (waiting for it while it \
                            goes; a stream from its first event). With `tokens=true` a stream also carries \
                            the `token` events of `llm` agents.
                            """,
                        parameters: [ref("IdempotencyKey", in: "parameters"), ref("Tokens", in: "parameters")],
                        body: jsonBody("RunRequest"),
                        responses: [
                            "200": [
                                "description": "The flow ran, or documents are missing.",
                                "links": runLinks,
                                "headers": .object(runHeaders(admitted: true)),
                                // A generated client reads one media type per status, the first it
                                // knows: the JSON answer, the one a client gets unless it asks.
                                "content": [
                                    "application/json": ["schema": ref("RunAnswer")],
                                    "text/event-stream": ["schema": eventStream],
                                ],
                            ],
                            "400": detail("The body is not JSON or not an object, or the flow is unknown."),
                            "409": [
                                "description": "The run was cancelled (`POST /runs/{id}/cancel`).",
                                "headers": .object(runHeaders(admitted: true)),
                                "content": json("Detail"),
                            ],
                            "413": tooLarge,
                            "415": unsupportedMediaType,
                            "422": validation("A field is missing or not a string, `story_id` does not match its pattern, `input` is too long, the `Idempotency-Key` is malformed or was sent before with another request, or `tokens` is neither `true` nor `false`."),
                            "500": [
                                "description": "An agent failed after its retries or timed out, a loop ran past `max_steps`, or storage failed.",
                                "headers": .object(runHeaders(admitted: false)),
                                "content": json("Detail"),
                            ],
                            "503": unavailable(
                                "Too many runs in flight (`--max-runs`), the server is draining, the drain timeout cut the run off, or (`--store postgres`) the database is unreachable.",
                                headers: runHeaders(admitted: false)),
                        ]),
                ],
                "/runs": [
                    "get": operation(
                        "listRuns", tag: "runs", summary: "Run records, newest first, a page at a time",
                        description: """
                            The filters combine. A `flow` that is not configured is an empty list (records of \
                            removed flows stay listable). Paging is stable: runs created meanwhile do not \
                            shift the pages after the first; follow `next_cursor` until it is null.
                            """,
                        parameters: [
                            [
                                "name": "story_id", "in": "query", "required": false,
                                "description": "Only the runs of this story.",
                                "schema": ["type": "string", "pattern": .string(RequestValidation.idPattern)],
                            ],
                            [
                                "name": "flow", "in": "query", "required": false,
                                "description": "Only the runs of this flow (any string: records of removed flows are listed too).",
                                "schema": ["type": "string"],
                            ],
                            [
                                "name": "status", "in": "query", "required": false, "description": "Only the runs in this status.",
                                "schema": ["type": "string", "enum": .array(RunStatus.allCases.map { .string($0.rawValue) })],
                            ],
                            [
                                "name": "limit", "in": "query", "required": false, "description": "At most this many records.",
                                "schema": [
                                    "type": "integer", "minimum": .int(Int64(OpenAPIDocument.runListLimits.lowerBound)),
                                    "maximum": .int(Int64(OpenAPIDocument.runListLimits.upperBound)),
                                    "default": .int(Int64(OpenAPIDocument.runListDefaultLimit)),
                                ],
                            ],
                            [
                                "name": "cursor", "in": "query", "required": false,
                                "description": "The `next_cursor` of the page before (opaque). Every string that matches the pattern is accepted.",
                                "schema": ["type": "string", "pattern": .string(OpenAPIDocument.runCursorPattern)],
                            ],
                        ],
                        responses: [
                            "200": ["description": "A page of records.", "content": json("RunList")],
                            "422": validation("A parameter does not match its schema, or is given twice."),
                            "500": storageFailed,
                        ]),
                    "post": operation(
                        "startRun", tag: "runs",
                        summary: "Start a run in the background",
                        description: """
                            Same body as `/run`. The run's record is stored before the answer; follow it under \
                            `/runs/{id}`. Sent again with the same `Idempotency-Key`, it answers 202 with the \
                            same `run_id` (its `status` as it is now) and starts nothing.
                            """,
                        parameters: [ref("IdempotencyKey", in: "parameters")],
                        body: jsonBody("RunRequest"),
                        responses: [
                            "202": accepted("The run is queued (or, replayed, the run the key started)."),
                            "400": detail("The body is not JSON or not an object, or the flow is unknown."),
                            "413": tooLarge,
                            "415": unsupportedMediaType,
                            "422": validation("A field is missing or not a string, `story_id` does not match its pattern, `input` is too long, or the `Idempotency-Key` is malformed or was sent before with another request."),
                            "500": storageFailed,
                            "503": unavailable("Too many runs in flight (`--max-runs`), the server is draining, or (`--store postgres`) the database is unreachable."),
                        ]),
                ],
                "/runs/{id}": [
                    "parameters": [ref("RunID", in: "parameters")],
                    "get": operation(
                        "getRun", tag: "runs", summary: "A run's record",
                        description: """
                            Records survive a restart. A run that was queued or running when the process died \
                            is resumed by the next one (`resumed` counts how often; the agents whose steps were \
                            journaled are not run again), or, with `--on-restart fail`, ends `failed`.
                            """,
                        responses: [
                            "200": ["description": "The record.", "content": json("RunRecord")],
                            "404": notFound("No run with this id."),
                            "422": pathValidation,
                            "500": storageFailed,
                        ]),
                ],
                "/runs/{id}/events": [
                    "parameters": [ref("RunID", in: "parameters")],
                    "get": operation(
                        "followRunEvents", tag: "runs", summary: "A run's events, replayed then followed live",
                        description: """
                            From the first event (or the one after `Last-Event-ID`) to the terminal one. A \
                            resumed run's events go on after the highest id stored, with a `progress` \
                            `resumed`; a client that saw later ids (sent, not yet durable when the process \
                            died) may see those ids again for the steps that run again. With `tokens=true`, \
                            the `token` events of the `llm` agent running while the stream follows live (they \
                            are not stored: a replay has none, and `Last-Event-ID` counts only numbered events).
                            """,
                        parameters: [
                            [
                                "name": "Last-Event-ID", "in": "header", "required": false,
                                "description": "Only the events after this id are sent (a whole number; anything else counts as 0).",
                                "schema": ["type": "string"],
                            ],
                            ref("Tokens", in: "parameters"),
                        ],
                        responses: [
                            "200": ["description": "The events.", "content": ["text/event-stream": ["schema": eventStream]]],
                            "204": ["description": "The run has finished and no event is after `Last-Event-ID`."],
                            "404": notFound("No run with this id."),
                            "422": validation("The id does not match its pattern, or `tokens` is neither `true` nor `false`."),
                            "500": storageFailed,
                        ]),
                ],
                "/runs/{id}/cancel": [
                    "parameters": [ref("RunID", in: "parameters")],
                    "post": operation(
                        "cancelRun", tag: "runs", summary: "Cancel a run",
                        description: "The run stops at its next await and ends `cancelled`, memory untouched. Cancelling a cancelled run again changes nothing.",
                        responses: [
                            "202": ["description": "The run is cancelled, or was already.", "content": json("CancelAccepted")],
                            "404": notFound("No run with this id."),
                            "409": detail("The run has already succeeded, failed or answered `pending_docs`."),
                            "422": pathValidation,
                            "500": storageFailed,
                        ]),
                ],
                "/runs/{id}/retry": [
                    "parameters": [ref("RunID", in: "parameters")],
                    "post": operation(
                        "retryRun", tag: "runs", summary: "Retry a failed or cancelled run from its failed step",
                        description: """
                            Starts a new run of the same flow, input and story, whose record has `retry_of`, \
                            queued in its story's order like any new run. It starts at the agent that failed \
                            (or was cancelled, or had not started) with the outputs of the original's \
                            journaled steps: those agents are not run again and send no events, but their \
                            steps count toward `max_steps` and their outputs are part of the retry's memory \
                            commit. No body.
                            """,
                        parameters: [ref("IdempotencyKey", in: "parameters")],
                        responses: [
                            "202": accepted("The retry is queued (or, replayed, the retry the key started)."),
                            "404": notFound("No run with this id."),
                            "409": detail("The run is not `failed` or `cancelled`."),
                            "422": validation("The id does not match its pattern, or the `Idempotency-Key` is malformed or was sent before with another request."),
                            "500": storageFailed,
                            "503": unavailable("Too many runs in flight (`--max-runs`), the server is draining, or (`--store postgres`) the database is unreachable."),
                        ]),
                ],
                "/flows": [
                    "get": operation(
                        "listFlows", tag: "runs", summary: "The configured flows",
                        description: "Each flow's agents and required documents, in flow order; its `start` and its `edges` in the order written, to draw it.",
                        responses: ["200": ["description": "The flows.", "content": json("FlowList")]]),
                ],
                "/docs": [
                    "get": operation(
                        "listDocuments", tag: "documents", summary: "Every document",
                        responses: [
                            "200": ["description": "Ids and sizes, sorted by id.", "content": json("DocumentList")],
                            "500": storageFailed,
                        ]),
                ],
                "/docs/{id}": [
                    "parameters": [ref("DocumentID", in: "parameters")],
                    "put": operation(
                        "putDocument", tag: "documents", summary: "Create or replace a document",
                        description: "The body is the document, whatever its content type; written atomically.",
                        body: [
                            "description": "The document's bytes, stored as they come. Any `Content-Type` is accepted (`text/markdown`, `text/plain`, none…), not only the one declared here; an empty body is an empty document.",
                            "required": false,
                            // Bytes, not text (a generated client sends a file's bytes); the one
                            // media type declared is the one generators know for a raw body.
                            "content": [
                                "application/octet-stream": ["schema": ["type": "string", "format": "binary"]],
                            ],
                        ],
                        responses: [
                            "200": ["description": "Replaced.", "links": documentLinks, "content": json("DocumentInfo")],
                            "201": ["description": "Created.", "links": documentLinks, "content": json("DocumentInfo")],
                            "413": tooLarge,
                            "422": pathValidation,
                            "500": storageFailed,
                        ]),
                    "get": getDocument("getDocument"),
                    "delete": operation(
                        "deleteDocument", tag: "documents", summary: "Delete a document",
                        responses: [
                            "204": ["description": "Deleted.", "links": ["GetDeletedDocument": link("getDocument", ["id": "$request.path.id"])]],
                            "404": notFound("No such document."),
                            "422": pathValidation,
                            "500": storageFailed,
                        ]),
                ],
                "/doc/{id}": [
                    "parameters": [ref("DocumentID", in: "parameters")],
                    "put": operation(
                        "putDocumentCompatible", tag: "documents", summary: "Save a document (the original service's route)",
                        body: jsonBody("CompatibleDocument"),
                        responses: [
                            "200": ["description": "Saved.", "links": documentLinks, "content": json("DocumentSaved")],
                            "400": detail("The body is not JSON or not an object."),
                            "413": tooLarge,
                            "415": unsupportedMediaType,
                            "422": validation("`content` is missing or not a string, or the id does not match its pattern."),
                            "500": storageFailed,
                        ]),
                    "get": getDocument("getDocumentCompatible"),
                ],
                "/doc/{id}/status": [
                    "parameters": [ref("DocumentID", in: "parameters")],
                    "get": operation(
                        "getDocumentStatus", tag: "documents", summary: "Whether a document exists",
                        responses: [
                            "200": ["description": "Whether it exists.", "content": json("DocumentStatus")],
                            "422": pathValidation,
                            "500": storageFailed,
                        ]),
                ],
                "/memory/{scope}": [
                    "parameters": [ref("Scope", in: "parameters")],
                    "get": operation(
                        "listMemory", tag: "memory", summary: "A scope's entries",
                        parameters: [[
                            "name": "prefix", "in": "query", "required": false,
                            "description": "Only keys that start with it.", "schema": ["type": "string"],
                        ]],
                        responses: [
                            "200": ["description": "The entries.", "content": json("MemoryList")],
                            "422": validation("The scope is not one of the three."),
                            "500": storageFailed,
                        ]),
                ],
                "/memory/{scope}/{key}": [
                    "parameters": [ref("Scope", in: "parameters"), ref("MemoryKey", in: "parameters")],
                    "get": operation(
                        "getMemory", tag: "memory", summary: "One memory entry",
                        responses: [
                            "200": ["description": "The entry.", "content": json("MemoryEntry")],
                            "404": notFound("No value at this scope and key."),
                            "422": validation("The scope is not one of the three, or the key does not match its pattern."),
                            "500": storageFailed,
                        ]),
                    "put": operation(
                        "putMemory", tag: "memory", summary: "Set a memory entry",
                        description: "Durable (fsync'd) before the answer.",
                        body: jsonBody("MemoryWrite"),
                        responses: [
                            "200": ["description": "The entry as stored.", "links": memoryLinks, "content": json("MemoryEntry")],
                            "400": detail("The body is not JSON or not an object."),
                            "413": tooLarge,
                            "415": unsupportedMediaType,
                            "422": validation("No `value`, the scope is not one of the three, or the key does not match its pattern."),
                            "500": storageFailed,
                        ]),
                    "delete": operation(
                        "deleteMemory", tag: "memory", summary: "Delete a memory entry",
                        responses: [
                            "204": [
                                "description": "Deleted.",
                                "links": ["GetDeletedMemory": link("getMemory", ["scope": "$request.path.scope", "key": "$request.path.key"])],
                            ],
                            "404": notFound("No value at this scope and key."),
                            "422": validation("The scope is not one of the three, or the key does not match its pattern."),
                            "500": storageFailed,
                        ]),
                ],
                "/healthz": [
                    "get": operation(
                        "health", tag: "operations", summary: "Liveness: 200 while the process serves (draining too)",
                        public: true,
                        responses: ["200": ["description": "Serving.", "content": json("Status")]]),
                ],
                "/readyz": [
                    "get": operation(
                        "readiness", tag: "operations", summary: "Readiness: agents loaded and the data dir writable",
                        public: true,
                        responses: [
                            "200": ["description": "Ready.", "content": json("Status")],
                            "503": unavailable("Draining, the data directory is not writable, or (`--store postgres`) the database is unreachable."),
                        ]),
                ],
                "/metrics": [
                    "get": operation(
                        "metrics", tag: "operations", summary: "Prometheus metrics",
                        responses: [
                            "200": [
                                "description": "Prometheus text exposition format.",
                                "content": ["text/plain": ["schema": ["type": "string"]]],
                            ],
                        ]),
                ],
                "/": [
                    "get": operation(
                        "console", tag: "operations", summary: "The web console",
                        description: "One self-contained HTML page (no outside assets, a strict `Content-Security-Policy`) that draws each flow as a graph, starts and follows runs (the running agent lit, an `llm` agent's tokens as they come), uploads missing documents, cancels runs, retries a failed or cancelled run from its failed step, lists a story's runs and replays any of them, and shows a story's memory, through the routes here. It holds no data and is served without the API key; it asks the person for the key and sends it to every other route.",
                        public: true,
                        responses: [
                            "200": [
                                "description": "The page.",
                                "headers": ["Content-Security-Policy": ["required": true, "schema": ["type": "string"]]],
                                "content": ["text/html": ["schema": ["type": "string"]]],
                            ],
                        ]),
                ],
                "/openapi.json": [
                    "get": operation(
                        "openAPI", tag: "operations", summary: "This document",
                        responses: ["200": ["description": "OpenAPI 3.1.", "content": ["application/json": ["schema": ["type": "object"]]]]]),
                ],
            ]
        }

        /// A run's events: the body as text, or (as OpenAPI 3.1 tools that read a stream
        /// event by event take `schema`, schemathesis among them) one `RunEvent`. A generated
        /// client tries the event models on the text, fails, and returns the text; a schema of
        /// one event alone made it call `from_dict` on the text.
        private var eventStream: JSONValue {
            [
                "anyOf": [["type": "string"], ["$ref": "#/components/schemas/RunEvent"]],
                "description": """
                    Server-Sent Events, lines ending in LF. Each event is an `id:` line (1, 2, 3, … \
                    within the run), an `event:` line and one `data:` line of JSON that has `run_id`, \
                    then an empty line: `progress` (data: `ProgressEvent`; `resumed` when a run goes \
                    on after a restart) and `result` \
                    (`ResultEvent`) events, then exactly one terminal event, after which the stream \
                    ends: `done` (`DoneEvent`: the `/run` 200 body), `error` (`ErrorEvent`) or \
                    `cancelled` (`CancelledEvent`). With `tokens=true`, `token` events (`TokenEvent`: \
                    an `event:` and a `data:` line, no `id:`) carry an `llm` agent's output as it comes. \
                    A `: ping` comment line goes out every `--heartbeat` seconds while nothing else does.
                    """,
            ]
        }

        private func link(_ operationID: String, _ parameters: JSONObject) -> JSONValue {
            ["operationId": .string(operationID), "parameters": .object(parameters)]
        }

        /// The run an answer names, followed under `/runs/{id}`.
        private var runLinks: JSONValue {
            let id: JSONObject = ["id": "$response.body#/run_id"]
            return [
                "GetRun": link("getRun", id), "FollowRunEvents": link("followRunEvents", id), "CancelRun": link("cancelRun", id),
                "RetryRun": link("retryRun", id),
            ]
        }

        /// `X-Run-ID` (required when the answer is always about an admitted run) and
        /// `Idempotent-Replayed`.
        private func runHeaders(admitted: Bool) -> JSONObject {
            [
                "X-Run-ID": ref(admitted ? "RunID" : "RunIDIfAdmitted", in: "headers"),
                "Idempotent-Replayed": ref("IdempotentReplayed", in: "headers"),
            ]
        }

        /// 202 of a run started in the background: `{"run_id", "status": "queued"}`.
        private func accepted(_ description: String) -> JSONValue {
            var headers: JSONObject = ["Location": ["description": "`/runs/<run_id>`.", "required": true, "schema": ["type": "string"]]]
            for (name, header) in runHeaders(admitted: true) { headers[name] = header }
            return ["description": .string(description), "links": runLinks, "headers": .object(headers), "content": json("RunAccepted")]
        }

        /// The document an answer names.
        private var documentLinks: JSONValue {
            let id: JSONObject = ["id": "$response.body#/id"]
            return [
                "GetDocument": link("getDocument", id), "GetDocumentStatus": link("getDocumentStatus", id),
                "DeleteDocument": link("deleteDocument", id),
            ]
        }

        /// The memory entry an answer names.
        private var memoryLinks: JSONValue {
            let entry: JSONObject = ["scope": "$response.body#/scope", "key": "$response.body#/key"]
            return ["GetMemory": link("getMemory", entry), "DeleteMemory": link("deleteMemory", entry)]
        }

        private func getDocument(_ operationID: String) -> JSONValue {
            operation(
                operationID, tag: "documents", summary: "A document's text",
                responses: [
                    "200": ["description": "The document.", "content": ["text/markdown": ["schema": ["type": "string"]]]],
                    "404": notFound("No such document."),
                    "422": pathValidation,
                    "500": storageFailed,
                ])
        }

        private func operation(
            _ id: String, tag: String, summary: String, description: String? = nil, public isPublic: Bool = false,
            parameters: [JSONValue] = [], body: JSONValue? = nil, responses: JSONObject
        ) -> JSONValue {
            var op: JSONObject = ["operationId": .string(id), "tags": [.string(tag)], "summary": .string(summary)]
            if let description { op["description"] = .string(description) }
            if !parameters.isEmpty { op["parameters"] = .array(parameters) }
            if let body { op["requestBody"] = body }
            var responses = responses
            if secured {
                if isPublic {
                    op["security"] = []
                } else {
                    responses["401"] = [
                        "description": "No `Authorization: Bearer <key>`, or the wrong key.",
                        "headers": ["WWW-Authenticate": ["required": true, "schema": ["type": "string"]]],
                        "content": json("Detail"),
                    ]
                }
            }
            op["responses"] = .object(byStatus(responses))
            return .object(op)
        }

        private func ref(_ name: String, in section: String = "schemas") -> JSONValue {
            ["$ref": .string("#/components/\(section)/\(name)")]
        }

        private func json(_ schema: String) -> JSONValue {
            ["application/json": ["schema": ref(schema)]]
        }

        private func jsonBody(_ schema: String) -> JSONValue {
            ["required": true, "content": json(schema)]
        }

        private func detail(_ description: String) -> JSONValue {
            ["description": .string(description), "content": json("Detail")]
        }

        private func notFound(_ description: String) -> JSONValue { detail(description) }

        private func validation(_ description: String) -> JSONValue {
            ["description": .string(description), "content": json("ValidationError")]
        }

        private var pathValidation: JSONValue { validation("The id does not match its pattern.") }

        private var tooLarge: JSONValue { detail("The body is larger than `--max-body` bytes.") }

        private var unsupportedMediaType: JSONValue {
            detail("The `Content-Type` is not `application/json` or `application/*+json` (none is fine).")
        }

        private var storageFailed: JSONValue { detail("Storage failed.") }

        private func unavailable(_ description: String, headers more: JSONObject = [:]) -> JSONValue {
            var headers: JSONObject = ["Retry-After": ref("RetryAfter", in: "headers")]
            for (name, header) in more { headers[name] = header }
            return ["description": .string(description), "headers": .object(headers), "content": json("Detail")]
        }
    }
}
