@testable import FlowdAPI
import Foundation
import Stores
import Testing

@Suite("Live runs")
struct LiveRunTests {
    /// Between its terminal event and its stored record a run is still live; a client
    /// resuming after the last event then gets 204 (which stops an EventSource), not an
    /// empty stream.
    @Test func aConcludedRunWithNothingAfterTheLastEventIDIsNotFollowed() async {
        let run = LiveRun(record: RunRecord(runID: "r1", flow: "default", storyID: "s", status: .running, createdAt: Date()))
        await run.agentStarted("analyst")
        await run.agentCompleted("analyst", output: "out", duration: .milliseconds(1))
        _ = run.conclude(.succeeded(result: "out"), detail: nil, status: 200)
        run.publishConclusion()

        let afterTheEnd = EventSubscriber(heartbeat: .seconds(10))
        #expect(run.follow(afterTheEnd, after: 4) == false)
        afterTheEnd.finish()
        let beforeTheEnd = EventSubscriber(heartbeat: .seconds(10))
        #expect(run.follow(beforeTheEnd, after: 3), "the terminal event is still to send")
    }
}
