import Agents
import Foundation

/// The run's progress on a terminal: one line per agent as it starts and ends.
struct TerminalProgress: FlowRunObserver {
    func agentStarted(_ agent: String) async {
        FileHandle.standardError.write(Data("▶ \(agent) started\n".utf8))
    }

    func agentCompleted(_ agent: String, output: String, duration: Duration) async {
        FileHandle.standardError.write(Data("✔ \(agent) completed in \(seconds(duration))\n".utf8))
    }

    func agentFailed(_ agent: String, message: String, duration: Duration) async {
        FileHandle.standardError.write(Data("✘ \(agent) failed after \(seconds(duration)): \(message)\n".utf8))
    }
}

private func seconds(_ duration: Duration) -> String {
    let (whole, fraction) = duration.components
    return String(format: "%.3f s", Double(whole) + Double(fraction) / 1e18)
}
