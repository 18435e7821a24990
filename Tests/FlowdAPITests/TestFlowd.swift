import Agents
import FlowdAPI
import FlowdBackends
import FlowdHTTP
import FlowdJSON
import FlowdTesting
import Foundation
import Logging
import Stores
import Testing

/// A temporary directory, removed when the value's scope ends via `remove()`.
struct TempDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("flowd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ component: String) -> URL { url.appendingPathComponent(component) }

    func write(_ component: String, _ text: String) throws {
        let file = path(component)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Agents for a test: file name (without `.yaml`) → YAML text, plus `flows.yaml`.
struct TestAgents {
    var agents: [String: String]
    var flows: String

    /// Writes them under `<dir>/agents`.
    func write(into directory: TempDirectory) throws {
        for (name, yaml) in agents { try directory.write("agents/\(name).yaml", yaml) }
        try directory.write("agents/flows.yaml", flows)
    }
}

/// A flowd in this process with its own temp dirs, reached through the harness's client:
/// in `.router` mode its routes are called in process, in `.live` mode `server` listens on
/// a free port (`server.port`; it is 0 in `.router` mode, where nothing listens).
struct TestFlowd {
    let app: FlowdApp
    let server: HTTPServer
    let client: any TestClient
    let directory: TempDirectory

    func post(_ path: String, _ json: String, headers: [(String, String)] = []) async throws -> TestResponse {
        try await client.post(path, json: json, headers: headers)
    }

    /// `POST /run` with this body.
    func run(_ json: String) async throws -> TestResponse { try await post("/run", json) }

    /// The story's isolated contexts as stored.
    func contexts(story: String) async throws -> [String: JSONValue] {
        var found: [String: JSONValue] = [:]
        for (key, value) in try await app.memory.list(.isolated, prefix: "") where key.hasSuffix(":\(story)") {
            found[key] = value
        }
        return found
    }
}

/// Opens flowd with `agents` in a temp dir, runs `body` with it in `mode` (see `TestMode`:
/// `.router` for the API's behaviour, `.live` where the wire, streaming or timing is under
/// test), then stops it and removes its files.
func withFlowd(
    _ agents: TestAgents,
    mode: TestMode = .live,
    configure: (inout FlowdConfiguration) -> Void = { _ in },
    _ body: (TestFlowd) async throws -> Void
) async throws {
    let directory = try TempDirectory()
    defer { directory.remove() }
    try agents.write(into: directory)
    var configuration = FlowdConfiguration()
    configuration.port = 0
    configuration.agentsDirectory = directory.path("agents")
    configuration.docsDirectory = directory.path("docs")
    configuration.dataDirectory = directory.path("data")
    configuration.httpThreads = 2
    configure(&configuration)
    var logger = Logger(label: "flowd.test")
    logger.logLevel = .critical
    let app = try await FlowdApp.open(configuration: configuration, logger: logger)
    let server = app.makeServer()
    do {
        try await server.test(mode) { client in
            try await body(TestFlowd(app: app, server: server, client: client, directory: directory))
        }
    } catch {
        await app.shutdown()
        throw error
    }
    await app.shutdown()
}

/// Agents most tests share: template and mock agents, no LLM.
enum Fixtures {
    static let basic = TestAgents(
        agents: [
            "analyst": """
                kind: template
                description: Analyses the input.
                prompt: "analysis of {{input}} (before: {{memory.last_output}})"
                """,
            "summarizer": """
                kind: template
                prompt: "summary of {{outputs.analyst}}"
                """,
            "reader": """
                kind: template
                requires: [brief]
                prompt: "read {{docs.brief}} and {{docs.prd}}"
                """,
            "architect": """
                kind: template
                requires: [arch, brief]
                prompt: "architecture from {{docs.arch}}"
                """,
            "boom": """
                kind: mock
                fail: "boom"
                """,
            "flaky": """
                kind: mock
                fail_attempts: 2
                max_retries: 3
                output: "recovered"
                """,
            "sleeper": """
                kind: mock
                delay_ms: 300
                prompt: "{{input}}|{{memory.last_output}}"
                """,
            "slow": """
                kind: mock
                delay_ms: 1000
                output: "slow done"
                """,
            "writer": """
                kind: template
                prompt: "draft for {{input}}"
                """,
            "reviewer": """
                kind: template
                prompt: "{{input}}"
                routes:
                  - {match: "^ok", action: approve}
                  - {match: ".*", action: revise}
                """,
        ],
        flows: """
            default: [analyst, summarizer]
            docs: [reader, architect]
            failing: [analyst, boom, summarizer]
            flaky: [flaky]
            sleepy: [sleeper]
            slow: [slow]
            review:
              start: writer
              transitions:
                writer: {default: reviewer}
                reviewer: {revise: writer, approve: end}
              max_steps: 5
            """)
}
