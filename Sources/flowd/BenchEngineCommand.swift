import Agents
import ArgumentParser

/// `flowd bench-engine`: the engine's overhead per node on a long template chain (hidden;
/// `scripts/bench-engine` runs it on a release build).
struct BenchEngine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-engine", shouldDisplay: false)

    @Option(help: "Agent executions to time.") var nodes = 100_000

    func run() async throws {
        _ = await FlowEngineBenchmark.measureTemplateChain(nodes: min(nodes, 1_000))  // warm-up
        let duration = await FlowEngineBenchmark.measureTemplateChain(nodes: nodes)
        let (whole, fraction) = duration.components
        let seconds = Double(whole) + Double(fraction) / 1e18
        print("\(seconds) s for \(nodes) nodes: \(seconds / Double(nodes) * 1e6) µs per node")
    }
}
