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
        _ = run.conclude(.succeeded(result: "out"))
        run.publishConclusion()

        let afterTheEnd = EventSubscriber(heartbeat: .seconds(10))
        #expect(run.follow(afterTheEnd, after: 4) == false)
        afterTheEnd.finish()
        let beforeTheEnd = EventSubscriber(heartbeat: .seconds(10))
        #expect(run.follow(beforeTheEnd, after: 3), "the terminal event is still to send")
    }

    private func running() -> LiveRun {
        LiveRun(record: RunRecord(runID: "r2", flow: "default", storyID: "s", status: .running, createdAt: Date()))
    }

    /// The cancel and the commit are decided under one lock: whichever comes first wins.
    @Test func aCancelAfterTheCommitIsClaimedComesTooLate() {
        let run = running()
        guard case .commit(let finish) = run.claimCommit(result: "out") else { Issue.record("no commit"); return }
        #expect(finish.record.status == .succeeded)
        #expect(run.cancel() == .tooLate)
        #expect(run.conclude(.succeeded(result: "out")).outcome == .succeeded(result: "out"))
    }

    @Test func aCommitAfterAnAcceptedCancelIsRefusedAndTheRunEndsCancelled() {
        let run = running()
        #expect(run.cancel() == .accepted(.running))
        #expect(run.cancel() == .accepted(.running), "a second cancel is accepted too, and changes nothing")
        guard case .cancelled = run.claimCommit(result: "out") else { Issue.record("the commit was claimed"); return }
        // Whatever the run then says of its end (a failure, pending documents), it was cancelled.
        let (outcome, finish) = run.conclude(.pendingDocuments(["brief"]))
        #expect(outcome == .cancelled)
        #expect(finish.record.status == .cancelled)
        #expect(finish.events.last?.name == "cancelled")
    }

    @Test func aCancelAfterTheEndIsDecidedComesTooLate() {
        let run = running()
        _ = run.conclude(.failed(detail: "boom: no"))
        #expect(run.cancel() == .tooLate)
    }
}
