import FlowEngine
import Foundation
import Logging

/// Every agent and flow loaded from one agents folder, all validated.
///
/// Loaded once; immutable afterwards. Every flow names only known agents and
/// every `{{outputs.<agent>}}` names a known agent.
public struct AgentCatalog: Sendable {
    public private(set) var agents: [String: AgentDefinition]
    private var flows: [String: FlowDefinition]

    /// Flow names, sorted.
    public var flowNames: [String] { flows.keys.sorted() }
    /// Agent ids, sorted.
    public var agentIDs: [String] { agents.keys.sorted() }

    public func flow(named name: String) -> FlowDefinition? { flows[name] }
    public func agent(id: String) -> AgentDefinition? { agents[id] }

    init(agents: [String: AgentDefinition], flows: [String: FlowDefinition]) {
        self.agents = agents
        self.flows = flows
    }

    /// Loads `*.yaml`/`*.yml` agents and `flows.yaml` from `directory`.
    /// Throws every problem found, not just the first.
    public static func load(directory: URL, logger: Logger) throws(CatalogError) -> AgentCatalog {
        var loader = CatalogLoader(directory: directory, logger: logger)
        let catalog = loader.load()
        if !loader.problems.isEmpty {
            throw .problems(loader.problems.sorted {
                ($0.file, $0.line ?? 0) < ($1.file, $1.line ?? 0)
            })
        }
        logger.info("Loaded agents", metadata: [
            "agents": "\(catalog.agents.count)", "flows": "\(catalog.flows.count)",
        ])
        return catalog
    }

    /// Builds a catalog from agents and flows given in code (tests, benchmarks).
    static func make(
        agents: [AgentDefinition], flows: [(name: String, start: String,
                                            transitions: [String: [(action: String, target: String?)]], maxSteps: Int)],
        logger: Logger
    ) -> AgentCatalog {
        let byID = Dictionary(uniqueKeysWithValues: agents.map { ($0.id, $0) })
        var defined: [String: FlowDefinition] = [:]
        for flow in flows {
            defined[flow.name] = CatalogLoader.makeFlow(
                name: flow.name, start: flow.start, transitions: flow.transitions,
                maxSteps: flow.maxSteps, agents: byID, logger: logger)
        }
        return AgentCatalog(agents: byID, flows: defined)
    }
}
