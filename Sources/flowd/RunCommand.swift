import Agents
import ArgumentParser
import FlowdAPI
import FlowdHTTP
import Foundation
import Logging
import Stores

/// `flowd run`: one flow in process, through the server's executor; prints the `/run` body.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one flow without the server and print the JSON body /run would answer.",
        discussion: "Exit status: 0 for a result or pending_docs, 1 when the flow failed, 2 for bad usage or input.")

    @Option(help: "The flow to run.") var flow: String = "default"
    @Option(help: "The input text.") var input: String
    @Option(help: "The story id.") var story: String
    @OptionGroup var storage: StorageOptions

    func run() async throws {
        let environment = Environment.current
        var configuration = FlowdConfiguration()
        try storage.apply(to: &configuration, environment: environment)
        configuration.llmBaseURL = environment.variables["FLOWD_LLM_BASE_URL"]
        configuration.llmAPIKey = environment.variables["FLOWD_LLM_API_KEY"]
        configuration.llmModel = environment.variables["FLOWD_LLM_MODEL"]
        var logger = makeLogger(environment: environment)
        if environment.variables["FLOWD_LOG_LEVEL"] == nil { logger.logLevel = .warning }

        guard Identifier.isValidID(story) else {
            throw ValidationError("--story must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
        }
        guard input.unicodeScalars.count <= configuration.maxInput else {
            throw ValidationError("--input is longer than \(configuration.maxInput) characters")
        }
        let app = try await openApp(configuration, logger: logger)
        guard app.catalog.flow(named: flow) != nil else {
            throw ValidationError("unknown flow '\(flow)'; flows: \(app.catalog.flowNames.joined(separator: ", "))")
        }
        let progress: (any FlowRunObserver)? = isatty(STDERR_FILENO) == 1 ? TerminalProgress() : nil
        // Through the server's run service: the run's memory and record are stored as /run's.
        let runID: String
        let outcome: RunOutcome
        do {
            // No idempotency key, so the run always runs.
            guard case .ran(let id, let ended) = try await app.runs.runInline(RunRequest(flow: flow, input: input, storyID: story),
                                                                                progress: progress) else { throw ExitCode(1) }
            (runID, outcome) = (id, ended)
        } catch let error as any HTTPResponseError {
            // Refused before it ran (storage unreachable): the `{"detail": …}` body /run would answer.
            await app.shutdown()
            print(String(decoding: error.body, as: UTF8.self))
            throw ExitCode(1)
        }
        await app.shutdown()
        LogOutput.shared.flush()
        let (body, status) = RunBody.render(outcome, runID: runID)
        print(String(decoding: body, as: UTF8.self))
        if status != 0 { throw ExitCode(status) }
    }
}
