@testable import Agents
import FlowdSync
import Foundation
import Logging

/// A temporary agents folder filled from a dictionary of file name → contents.
struct AgentsFolder {
    let url: URL

    init(_ files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("agents-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
    }

    func load() throws(CatalogError) -> AgentCatalog {
        try AgentCatalog.load(directory: url, logger: Logger(label: "test"))
    }

    /// The problems of loading, as strings with the folder prefix removed.
    func problems() -> [String] {
        do {
            _ = try load()
            return []
        } catch {
            return error.problems.map { $0.description.replacingOccurrences(of: url.relativePath + "/", with: "") }
        }
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// The shipped agents folder of the repository.
let shippedAgents = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("agents")

/// Records a run's observer events in order.
final class RunRecorder: FlowRunObserver {
    let events = Locked<[String]>([])

    func agentStarted(_ agent: String) async { events.withLock { $0.append("started \(agent)") } }
    func agentCompleted(_ agent: String, output: String, duration: Duration) async {
        events.withLock { $0.append("completed \(agent): \(output)") }
    }
    func agentFailed(_ agent: String, message: String, duration: Duration) async {
        events.withLock { $0.append("failed \(agent): \(message)") }
    }

    var all: [String] { events.withLock { $0 } }
}
