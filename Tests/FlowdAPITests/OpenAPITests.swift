@testable import FlowdAPI
import FlowdHTTP
import FlowdTesting
import Foundation
import Stores
import Testing

@Suite("OpenAPI document")
struct OpenAPITests {
    /// The routes `FlowdApp.makeRouter()` registers, as (method, pattern), and HEAD wherever
    /// GET is (the router answers it with the GET handler): every one of them is described,
    /// the console's and this document's own included, and nothing else is.
    static func routerRoutes() async throws -> Set<Route> {
        var registered: Set<Route> = []
        try await withFlowd(Fixtures.basic) { flowd in
            registered = Set(flowd.app.makeRouter().routes.map { Route($0.method, $0.pattern) })
        }
        return registered.union(registered.filter { $0.method == "GET" }.map { Route("HEAD", $0.pattern) })
    }

    struct Route: Hashable, CustomStringConvertible {
        var method: String
        var pattern: String
        init(_ method: String, _ pattern: String) {
            self.method = method
            self.pattern = pattern
        }

        var description: String { "\(method) \(pattern)" }

        /// A path that the pattern matches, with valid parameter values.
        var samplePath: String {
            pattern.replacingOccurrences(of: "{id}", with: "s1")
                .replacingOccurrences(of: "{scope}", with: "isolated")
                .replacingOccurrences(of: "{key}", with: "analyst:s1")
        }
    }

    static func document(flowNames: [String] = ["default", "review"], maxInput: Int = 65_536, apiKeyRequired: Bool = false) throws -> [String: Any] {
        let value = OpenAPIDocument.make(flowNames: flowNames, maxInput: maxInput, apiKeyRequired: apiKeyRequired)
        return try #require(try JSONSerialization.jsonObject(with: Data(value.serialized())) as? [String: Any])
    }

    static func operations(_ document: [String: Any]) -> [Route: [String: Any]] {
        var found: [Route: [String: Any]] = [:]
        for (path, item) in document["paths"] as? [String: Any] ?? [:] {
            for (method, operation) in item as? [String: Any] ?? [:] where method != "parameters" {
                found[Route(method.uppercased(), path)] = operation as? [String: Any] ?? [:]
            }
        }
        return found
    }

    @Test(.enabled("python3 with openapi-spec-validator is not installed") {
              try await TestHTTPClient.blocking { SpecValidator.isAvailable }
          },
          arguments: [false, true])
    func documentIsAValidOpenAPI31Document(apiKeyRequired: Bool) async throws {
        let json = OpenAPIDocument.make(flowNames: ["default", "review"], maxInput: 100, apiKeyRequired: apiKeyRequired).serialized()
        // On a thread of its own: the validator is a child process that takes seconds to start,
        // and waiting for it on Swift's pool (2 threads here) would stall every other test.
        let problem = try await TestHTTPClient.blocking { try SpecValidator.validate(json) }
        #expect(problem == nil, "\(problem ?? "")")
    }

    @Test func everyRouteOfTheRouterIsDescribedAndNothingElse() async throws {
        let routes = try await Self.routerRoutes()
        #expect(!routes.isEmpty)
        let described = Set(Self.operations(try Self.document()).keys)
        #expect(described == routes, "undescribed: \(routes.subtracting(described)); extra: \(described.subtracting(routes))")
    }

    /// The router's list is what it routes: each listed route matches a path of its pattern,
    /// and no other method on a described path is routed (no unlisted method hides there).
    @Test func theRoutersListIsWhatItRoutes() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let router = flowd.app.makeRouter()
            let listed = Set(router.routes.map { Route($0.method, $0.pattern) })
            let routes = listed.union(listed.filter { $0.method == "GET" }.map { Route("HEAD", $0.pattern) })
            for route in routes {
                guard case .found(let pattern, _, _) = router.match(method: route.method, rawPath: route.samplePath) else {
                    Issue.record("the router has no \(route)")
                    continue
                }
                #expect(pattern == route.pattern)
            }
            let described = Set(Self.operations(try Self.document()).keys)
            for path in Set(described.map(\.pattern)) {
                for method in ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"] where !routes.contains(Route(method, path)) {
                    if case .found = router.match(method: method, rawPath: Route(method, path).samplePath) {
                        Issue.record("\(method) \(path) is routed but not listed")
                    }
                }
            }
        }
    }

    /// `Resources/openapi.json` writes out a few values that the code decides: each of them is
    /// the code's, wherever the file writes it, and the file writes no other pattern.
    @Test func theValuesTheFileRepeatsAreTheCodes() throws {
        let document = try Self.document(apiKeyRequired: true)
        func at(_ path: String) -> Any? {
            path.split(separator: "/").reduce(document as Any?) { ($0 as? [String: Any])?[String($1)] }
        }
        let patterns: [String: String] = [
            "components/schemas/RunRequest/properties/story_id": RequestValidation.idPattern,
            "components/schemas/RunRecord/properties/retry_of": RequestValidation.idPattern,
            "components/schemas/RunList/properties/next_cursor": RunCursor.pattern,
            "components/parameters/RunID/schema": RequestValidation.idPattern,
            "components/parameters/DocumentID/schema": RequestValidation.idPattern,
            "components/parameters/MemoryKey/schema": RequestValidation.memoryKeyPattern,
            "components/parameters/IdempotencyKey/schema": ValidationIssue.idempotencyKeyPattern,
            "components/headers/RunID/schema": RequestValidation.idPattern,
            "components/headers/RunIDIfAdmitted/schema": RequestValidation.idPattern,
        ]
        for (path, pattern) in patterns {
            #expect((at(path) as? [String: Any])?["pattern"] as? String == pattern, "\(path)")
        }
        let statuses = RunStatus.allCases.map(\.rawValue)
        for path in ["components/schemas/RunRecord/properties/status", "components/schemas/RunAccepted/properties/status"] {
            #expect((at(path) as? [String: Any])?["enum"] as? [String] == statuses, "\(path)")
        }
        #expect((at("components/schemas/Scope") as? [String: Any])?["enum"] as? [String] == MemoryScope.allCases.map(\.rawValue))
        for method in ["get", "head"] {
            let parameters = (at("paths") as? [String: Any]).flatMap { ($0["/runs"] as? [String: Any])?[method] as? [String: Any] }?["parameters"]
            let byName = Dictionary(uniqueKeysWithValues: (parameters as? [[String: Any]] ?? []).map {
                ($0["name"] as? String ?? "", $0["schema"] as? [String: Any] ?? [:])
            })
            #expect(byName["story_id"]?["pattern"] as? String == RequestValidation.idPattern, "\(method)")
            #expect(byName["status"]?["enum"] as? [String] == statuses, "\(method)")
            #expect(byName["limit"]?["minimum"] as? Int == 1, "\(method)")
            #expect(byName["limit"]?["maximum"] as? Int == RunListQuery.maxLimit, "\(method)")
            #expect(byName["limit"]?["default"] as? Int == RunListQuery.defaultLimit, "\(method)")
            #expect(byName["cursor"]?["pattern"] as? String == RunCursor.pattern, "\(method)")
        }
        // Any other pattern would be a rule the server does not know: only an event's `id` has one of its own.
        var written: Set<String> = []
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                if let pattern = object["pattern"] as? String { written.insert(pattern) }
                object.values.forEach(collect)
            } else if let array = value as? [Any] {
                array.forEach(collect)
            }
        }
        collect(document)
        #expect(written == Set(patterns.values).union([RunCursor.pattern, "^[1-9][0-9]*$"]))
    }

    @Test func theFlowEnumIsTheConfiguredFlowsAndInputIsBoundedByMaxInput() async throws {
        try await withFlowd(Fixtures.basic) { flowd in
            let names = flowd.app.catalog.flowNames
            let document = try Self.document(flowNames: names, maxInput: flowd.app.configuration.maxInput)
            let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any]
            let properties = (schemas?["RunRequest"] as? [String: Any])?["properties"] as? [String: Any]
            let flow = properties?["flow"] as? [String: Any]
            #expect(flow?["enum"] as? [String] == names)
            #expect(flow?["default"] as? String == "default")
            let input = properties?["input"] as? [String: Any]
            #expect(input?["maxLength"] as? Int == flowd.app.configuration.maxInput)
            let storyID = properties?["story_id"] as? [String: Any]
            #expect(storyID?["pattern"] as? String == "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
        }
    }

    @Test func withoutADefaultFlowTheFlowIsRequired() throws {
        let document = try Self.document(flowNames: ["review"])
        let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let request = schemas?["RunRequest"] as? [String: Any]
        #expect(request?["required"] as? [String] == ["flow", "input", "story_id"])
    }

    @Test func anAPIKeyIsAskedForEverywhereButTheProbesAndTheConsole() throws {
        let document = try Self.document(apiKeyRequired: true)
        let schemes = (document["components"] as? [String: Any])?["securitySchemes"] as? [String: Any]
        #expect((schemes?["bearerAuth"] as? [String: Any])?["scheme"] as? String == "bearer")
        #expect(document["security"] as? [[String: [String]]] == [["bearerAuth": []]])
        let open: Set<Route> = [
            Route("GET", "/healthz"), Route("GET", "/readyz"), Route("GET", "/"),
            Route("HEAD", "/healthz"), Route("HEAD", "/readyz"), Route("HEAD", "/"),
        ]
        for (route, operation) in Self.operations(document) {
            let responses = operation["responses"] as? [String: Any] ?? [:]
            if open.contains(route) {
                #expect((operation["security"] as? [Any])?.isEmpty == true, "\(route)")
                #expect(responses["401"] == nil, "\(route)")
            } else {
                #expect(operation["security"] == nil, "\(route)")
                #expect(responses["401"] != nil, "\(route)")
            }
        }
        let withoutKey = try Self.document(apiKeyRequired: false)
        #expect(withoutKey["security"] == nil)
        for (route, operation) in Self.operations(withoutKey) {
            #expect((operation["responses"] as? [String: Any])?["401"] == nil, "\(route)")
        }
    }

    @Test func headIsDeclaredBesideEveryGetWithItsStatusesAndHeadersButNoBody() throws {
        let operations = Self.operations(try Self.document(apiKeyRequired: true))
        for (route, get) in operations where route.method == "GET" {
            let head = try #require(operations[Route("HEAD", route.pattern)], "no HEAD for \(route)")
            #expect(head["operationId"] as? String == (get["operationId"] as? String ?? "") + "Head")
            #expect((head["security"] as? [Any])?.isEmpty == (get["security"] as? [Any])?.isEmpty)
            let getResponses = get["responses"] as? [String: [String: Any]] ?? [:]
            let headResponses = head["responses"] as? [String: [String: Any]] ?? [:]
            #expect(Set(headResponses.keys) == Set(getResponses.keys), "\(route)")
            for (status, response) in headResponses {
                #expect(response["content"] == nil, "HEAD \(route.pattern) \(status) has a body")
                #expect(Set((response["headers"] as? [String: Any] ?? [:]).keys)
                        == Set((getResponses[status]?["headers"] as? [String: Any] ?? [:]).keys), "HEAD \(route.pattern) \(status)")
            }
        }
    }

    /// Generators need the text to be a valid reading of the body (a schema of one event object
    /// alone breaks them); schema-driven testers read `schema` as one event (OpenAPI 3.1).
    @Test func everyEventStreamIsDescribedAsTextOrOneEvent() throws {
        var streams = 0
        for (route, operation) in Self.operations(try Self.document()) {
            for (_, response) in operation["responses"] as? [String: [String: Any]] ?? [:] {
                guard let stream = (response["content"] as? [String: Any])?["text/event-stream"] as? [String: Any] else { continue }
                streams += 1
                let schema = stream["schema"] as? [String: Any]
                let branches = schema?["anyOf"] as? [[String: Any]] ?? []
                #expect(branches.count == 2, "\(route)")
                #expect(branches.first?["type"] as? String == "string", "\(route)")
                #expect(branches.last?["$ref"] as? String == "#/components/schemas/RunEvent", "\(route)")
                let text = schema?["description"] as? String ?? ""
                for name in ["progress", "result", "done", "error", "cancelled", "token", "ProgressEvent", "ResultEvent", "DoneEvent",
                             "ErrorEvent", "CancelledEvent", "TokenEvent", "tokens=true", ": ping"] {
                    #expect(text.contains(name), "\(route): the event vocabulary lacks \(name)")
                }
            }
        }
        #expect(streams == 2)  // POST /run (with Accept: text/event-stream) and GET /runs/{id}/events
    }

    @Test func theRunAnswerIsOneObjectWhoseResultOrPendingDocsIsNull() throws {
        let schemas = (try Self.document()["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let answer = try #require(schemas?["RunAnswer"] as? [String: Any])
        #expect(answer["oneOf"] == nil && answer["anyOf"] == nil)
        #expect(answer["type"] as? String == "object")
        #expect(Set(answer["required"] as? [String] ?? []) == ["result", "pending_docs", "run_id"])
        let properties = answer["properties"] as? [String: [String: Any]]
        #expect(properties?["result"]?["type"] as? [String] == ["string", "null"])
        #expect(properties?["pending_docs"]?["type"] as? [String] == ["array", "null"])
    }

    @Test func aDocumentIsPutAsBinaryBytes() throws {
        let put = try #require(Self.operations(try Self.document())[Route("PUT", "/docs/{id}")])
        let content = (put["requestBody"] as? [String: Any])?["content"] as? [String: [String: Any]]
        #expect(content.map { Set($0.keys) } == ["application/octet-stream"])
        let schema = content?["application/octet-stream"]?["schema"] as? [String: Any]
        #expect(schema?["type"] as? String == "string")
        #expect(schema?["format"] as? String == "binary")
    }

    @Test func everyOperationWithAPathParameterDeclaresTheRoutingAnswer404() throws {
        let document = try Self.document()
        for (route, operation) in Self.operations(document) where route.pattern.contains("{") {
            let notFound = (operation["responses"] as? [String: Any])?["404"] as? [String: Any]
            let schema = ((notFound?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any]
            if route.method == "HEAD" {
                #expect(notFound != nil, "\(route)")
            } else {
                #expect(schema?["$ref"] as? String == "#/components/schemas/Detail", "\(route)")
            }
        }
        let responses = (document["components"] as? [String: Any])?["responses"] as? [String: Any]
        let methodNotAllowed = try #require(responses?["MethodNotAllowed"] as? [String: Any])
        #expect((methodNotAllowed["headers"] as? [String: Any])?["Allow"] != nil)
        let schema = (((methodNotAllowed["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any])
        #expect(schema?["$ref"] as? String == "#/components/schemas/Detail")
    }

    static let routesThatStartRuns: Set<Route> = [Route("POST", "/run"), Route("POST", "/runs"), Route("POST", "/runs/{id}/retry")]

    static func schemas(_ document: [String: Any]) -> [String: [String: Any]] {
        (document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]] ?? [:]
    }

    @Test func theRoutesThatStartRunsAndOnlyTheyTakeAnIdempotencyKey() throws {
        let document = try Self.document()
        let parameters = (document["components"] as? [String: Any])?["parameters"] as? [String: [String: Any]]
        let key = try #require(parameters?["IdempotencyKey"])
        #expect(key["name"] as? String == "Idempotency-Key")
        #expect(key["in"] as? String == "header")
        #expect(key["required"] as? Bool == false)
        #expect((key["schema"] as? [String: Any])?["pattern"] as? String == "^[!-~]{1,255}$")
        for (route, operation) in Self.operations(document) {
            let refs = (operation["parameters"] as? [[String: Any]] ?? []).compactMap { $0["$ref"] as? String }
            #expect(refs.contains("#/components/parameters/IdempotencyKey") == Self.routesThatStartRuns.contains(route), "\(route)")
        }
    }

    /// The pattern as a JSON Schema validator reads it (ECMA-262, as `NSRegularExpression` does
    /// for these few constructs): what the server takes, 1 to 255 of %x21-7E.
    @Test(arguments: [
        ("k", true), ("!~", true), ("order-42:a/b?c=d", true), (String(repeating: "x", count: 255), true),
        ("", false), (" ", false), ("two words", false), ("tab\t", false), ("é", false), ("\u{7F}", false),
        (String(repeating: "x", count: 256), false),
    ])
    func theIdempotencyKeyPatternTakesVisibleASCIIOnly(key: String, valid: Bool) throws {
        let pattern = try NSRegularExpression(pattern: OpenAPIDocument.idempotencyKeyPattern)
        let matched = pattern.firstMatch(in: key, range: NSRange(key.startIndex..., in: key)) != nil
        #expect(matched == valid, "\(key.debugDescription)")
    }

    @Test func everyAnswerAboutAnAdmittedRunDeclaresItsRunIDAndWhetherItIsAReplay() throws {
        let operations = Self.operations(try Self.document())
        // Required where the answer is always about an admitted run; optional where it may
        // come before one was (storage failed, too many runs).
        let expected: [(Route, String, Bool)] = [
            (Route("POST", "/run"), "200", true), (Route("POST", "/run"), "409", true),
            (Route("POST", "/run"), "500", false), (Route("POST", "/run"), "503", false),
            (Route("POST", "/runs"), "202", true), (Route("POST", "/runs/{id}/retry"), "202", true),
        ]
        let components = try Self.document()["components"] as? [String: Any]
        let headers = components?["headers"] as? [String: [String: Any]] ?? [:]
        for (route, status, required) in expected {
            let response = (operations[route]?["responses"] as? [String: [String: Any]])?[status]
            let declared = response?["headers"] as? [String: [String: Any]] ?? [:]
            let runID = try #require(declared["X-Run-ID"]?["$ref"] as? String, "\(route) \(status)")
            #expect((headers[String(runID.split(separator: "/").last ?? "")]?["required"] as? Bool ?? false) == required, "\(route) \(status)")
            let replayed = try #require(declared["Idempotent-Replayed"]?["$ref"] as? String, "\(route) \(status)")
            let schema = headers[String(replayed.split(separator: "/").last ?? "")]?["schema"] as? [String: Any]
            #expect(schema?["enum"] as? [String] == ["true"])
            if status == "202" {
                #expect(declared["Location"]?["required"] as? Bool == true, "\(route)")
                let content = (response?["content"] as? [String: [String: Any]])?["application/json"]?["schema"] as? [String: Any]
                #expect(content?["$ref"] as? String == "#/components/schemas/RunAccepted", "\(route)")
            }
        }
    }

    @Test func aRetryAnswersLikeTheOtherRunRoutes() throws {
        for secured in [false, true] {
            let retry = try #require(Self.operations(try Self.document(apiKeyRequired: secured))[Route("POST", "/runs/{id}/retry")])
            #expect(retry["operationId"] as? String == "retryRun")
            #expect(retry["requestBody"] == nil)
            let statuses = Set((retry["responses"] as? [String: Any] ?? [:]).keys)
            let expected: Set<String> = ["202", "404", "409", "422", "500", "503"]
            #expect(statuses == expected.union(secured ? ["401"] : []))
            #expect(((retry["responses"] as? [String: [String: Any]])?["503"]?["headers"] as? [String: Any])?["Retry-After"] != nil)
        }
    }

    @Test func aRunRecordAlwaysSaysHowOftenItWasResumedAndARetryWhatItRetries() throws {
        let record = try #require(Self.schemas(try Self.document())["RunRecord"])
        let required = record["required"] as? [String] ?? []
        #expect(required.contains("resumed") && !required.contains("retry_of"))
        let properties = record["properties"] as? [String: [String: Any]]
        #expect(properties?["resumed"]?["type"] as? String == "integer")
        #expect(properties?["resumed"]?["minimum"] as? Int == 0)
        #expect(properties?["retry_of"]?["type"] as? String == "string")
        #expect(properties?["retry_of"]?["pattern"] as? String == "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    }

    /// What `GET /runs/{id}` answers is what the schema describes: every member declared,
    /// every required one there, for a plain run and a resumed retry.
    @Test func theRecordsJSONHasTheSchemasMembers() throws {
        let properties = Set((Self.schemas(try Self.document())["RunRecord"]?["properties"] as? [String: Any] ?? [:]).keys)
        let required = Set(Self.schemas(try Self.document())["RunRecord"]?["required"] as? [String] ?? [])
        var retry = RunRecord(runID: "r2", flow: "default", storyID: "s1", status: .running, createdAt: Date(), retryOf: "r1")
        retry.resumed = 2
        for record in [RunRecord(runID: "r1", flow: "default", storyID: "s1", status: .failed, createdAt: Date()), retry] {
            guard case .object(let json) = record.json else { Issue.record("not an object"); continue }
            let members = Set(json.keys)
            #expect(members.isSubset(of: properties), "undeclared: \(members.subtracting(properties))")
            #expect(required.isSubset(of: members), "missing: \(required.subtracting(members))")
        }
    }

    @Test func aProgressEventMayTellThatTheRunWasResumedWithNoAgentLeft() throws {
        let progress = try #require(Self.schemas(try Self.document())["ProgressEvent"])
        let properties = progress["properties"] as? [String: [String: Any]]
        #expect(properties?["status"]?["enum"] as? [String] == ["started", "completed", "failed", "resumed"])
        #expect(properties?["agent"]?["type"] as? [String] == ["string", "null"])
        #expect((progress["description"] as? String)?.contains("resumed") == true)
        guard case .object(let data) = RunEvent.resumed(id: 7, runID: "r1", agent: nil, at: Date()).data else {
            Issue.record("not an object")
            return
        }
        #expect(Set(data.keys).isSubset(of: Set(properties?.keys.map { $0 } ?? [])))
        #expect(data["agent"] == .null && data["status"] == "resumed")
    }

    @Test func aFlowListsItsStartAndItsEdgesEachEndingAtAnAgentOrEnd() throws {
        let schemas = Self.schemas(try Self.document())
        let flow = try #require(((schemas["FlowList"]?["properties"] as? [String: Any])?["flows"] as? [String: Any])?["items"] as? [String: Any])
        #expect(Set(flow["required"] as? [String] ?? []) == ["name", "agents", "requires", "start", "edges"])
        let properties = flow["properties"] as? [String: [String: Any]]
        #expect(properties?["start"]?["type"] as? String == "string")
        #expect((properties?["edges"]?["items"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/FlowEdge")
        let edge = try #require(schemas["FlowEdge"])
        #expect(Set(edge["required"] as? [String] ?? []) == ["from", "action", "to"])
        #expect(((edge["properties"] as? [String: [String: Any]])?["to"]?["description"] as? String)?.contains("`end`") == true)
    }

    @Test func theRunListIsFilteredAndPagedByACursorWhosePatternIsWrittenOnce() throws {
        let document = try Self.document(apiKeyRequired: true)
        let list = try #require(Self.operations(document)[Route("GET", "/runs")])
        #expect(list["operationId"] as? String == "listRuns")
        let parameters = Dictionary(uniqueKeysWithValues: (list["parameters"] as? [[String: Any]] ?? []).map {
            ($0["name"] as? String ?? "", $0)
        })
        #expect(Set(parameters.keys) == ["story_id", "flow", "status", "limit", "cursor"])
        #expect(parameters.values.allSatisfy { $0["in"] as? String == "query" && $0["required"] as? Bool == false })
        func schema(_ name: String) -> [String: Any] { parameters[name]?["schema"] as? [String: Any] ?? [:] }
        #expect(schema("story_id")["pattern"] as? String == "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
        #expect(schema("flow")["type"] as? String == "string" && schema("flow")["enum"] == nil)
        #expect(schema("status")["enum"] as? [String] == ["queued", "running", "succeeded", "pending_docs", "failed", "cancelled"])
        #expect(schema("limit")["type"] as? String == "integer")
        #expect((schema("limit")["minimum"] as? Int, schema("limit")["maximum"] as? Int, schema("limit")["default"] as? Int) == (1, 100, 20))
        #expect(schema("cursor")["pattern"] as? String == OpenAPIDocument.runCursorPattern)
        #expect(OpenAPIDocument.runCursorPattern == RunCursor.pattern)
        let responses = list["responses"] as? [String: [String: Any]] ?? [:]
        #expect(Set(responses.keys) == ["200", "401", "422", "500", "503"])
        let ok = ((responses["200"]?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any]
        #expect(ok?["$ref"] as? String == "#/components/schemas/RunList")
        let page = try #require(Self.schemas(document)["RunList"])
        #expect(Set(page["required"] as? [String] ?? []) == ["runs", "next_cursor"])
        let properties = page["properties"] as? [String: [String: Any]]
        #expect((properties?["runs"]?["items"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/RunRecord")
        #expect(properties?["next_cursor"]?["type"] as? [String] == ["string", "null"])
        #expect(properties?["next_cursor"]?["pattern"] as? String == OpenAPIDocument.runCursorPattern)
    }

    @Test func aRecordAlwaysHasItsTokenUsage() throws {
        let schemas = Self.schemas(try Self.document())
        let record = try #require(schemas["RunRecord"])
        #expect((record["required"] as? [String] ?? []).contains("usage"))
        #expect(((record["properties"] as? [String: [String: Any]])?["usage"]?["$ref"] as? String) == "#/components/schemas/Usage")
        let usage = try #require(schemas["Usage"])
        #expect(Set(usage["required"] as? [String] ?? []) == ["prompt_tokens", "completion_tokens"])
        for name in ["prompt_tokens", "completion_tokens"] {
            let property = (usage["properties"] as? [String: [String: Any]])?[name]
            #expect(property?["type"] as? String == "integer" && property?["minimum"] as? Int == 0, "\(name)")
        }
    }

    /// `tokens` on the two routes that stream a run, and on nothing else; a token event has no id.
    @Test func tokensAreAskedForOnTheTwoStreamsAndTheirEventsHaveNoID() throws {
        let document = try Self.document()
        let parameters = (document["components"] as? [String: Any])?["parameters"] as? [String: [String: Any]]
        let tokens = try #require(parameters?["Tokens"])
        #expect(tokens["name"] as? String == "tokens" && tokens["in"] as? String == "query" && tokens["required"] as? Bool == false)
        #expect((tokens["schema"] as? [String: Any])?["type"] as? String == "boolean")
        let streaming: Set<Route> = [Route("POST", "/run"), Route("GET", "/runs/{id}/events"), Route("HEAD", "/runs/{id}/events")]
        for (route, operation) in Self.operations(document) {
            let refs = (operation["parameters"] as? [[String: Any]] ?? []).compactMap { $0["$ref"] as? String }
            #expect(refs.contains("#/components/parameters/Tokens") == streaming.contains(route), "\(route)")
            if streaming.contains(route), route.method != "HEAD" {
                let invalid = (operation["responses"] as? [String: [String: Any]])?["422"]?["description"] as? String
                #expect(invalid?.contains("`tokens`") == true, "\(route)")
            }
        }
        let schemas = Self.schemas(document)
        #expect(Set(schemas["TokenEvent"]?["required"] as? [String] ?? []) == ["run_id", "agent", "text"])
        let variants = schemas["RunEvent"]?["oneOf"] as? [[String: Any]] ?? []
        let token = try #require(variants.first { (($0["properties"] as? [String: [String: Any]])?["event"]?["const"] as? String) == "token" })
        #expect(token["required"] as? [String] == ["event", "data"])
        #expect((token["not"] as? [String: Any])?["required"] as? [String] == ["id"])
        for variant in variants where (variant["properties"] as? [String: [String: Any]])?["event"]?["const"] as? String != "token" {
            #expect((variant["required"] as? [String] ?? []).contains("id"))
        }
    }

    @Test func everyOperationHasAUniqueOperationID() throws {
        let operations = Self.operations(try Self.document())
        let ids = operations.values.compactMap { $0["operationId"] as? String }
        #expect(ids.count == operations.count)
        #expect(Set(ids).count == ids.count)
    }
}

/// `openapi-spec-validator` (Python), run as a child process.
enum SpecValidator {
    static let isAvailable: Bool = (try? run(["-c", "import openapi_spec_validator"], input: []).status) == 0

    /// nil when the document is valid, else the validator's message.
    static func validate(_ json: [UInt8]) throws -> String? {
        let script = """
            import json, sys
            from openapi_spec_validator import validate
            from openapi_spec_validator.validation import OpenAPIV31SpecValidator
            validate(json.load(sys.stdin), cls=OpenAPIV31SpecValidator)
            """
        let (status, output) = try run(["-c", script], input: json)
        return status == 0 ? nil : output
    }

    private static func run(_ arguments: [String], input: [UInt8]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let stdin = Pipe(), output = Pipe()
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try stdin.fileHandleForWriting.write(contentsOf: Data(input))
        try stdin.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}
