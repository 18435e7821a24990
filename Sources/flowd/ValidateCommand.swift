import Agents
import ArgumentParser
import Foundation
import Logging

/// `flowd validate`: loads every agent and flow and reports each problem as `FILE: message`.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the agents and flows of an agents folder.",
        discussion: "Prints each problem as FILE: message and exits 1 if there is any."
    )

    @Option(name: .long, help: "The agents folder (env FLOWD_AGENTS; default ./agents).")
    var agents: String?

    func run() throws {
        let directory = agents ?? ProcessInfo.processInfo.environment["FLOWD_AGENTS"] ?? "./agents"
        var logger = Logger(label: "flowd.validate")
        logger.logLevel = .warning
        do {
            let catalog = try AgentCatalog.load(directory: URL(fileURLWithPath: directory), logger: logger)
            print("\(catalog.agentIDs.count) agents, \(catalog.flowNames.count) flows: OK")
        } catch {
            for problem in error.problems { print(problem.description) }
            throw ExitCode(1)
        }
    }
}
