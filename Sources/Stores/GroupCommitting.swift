/// A store actor with a group-committed log.
protocol GroupCommitting: Actor {
    associatedtype Op
    var commit: GroupCommit<Op> { get set }
}

extension GroupCommitting {
    /// Waits until the caller may go on: true when it must lead the pending batch (which
    /// holds its line), false when another leader wrote it. Throws the batch's error.
    func awaitTurn() async throws(StoreError) -> Bool {
        if commit.claimLead() { return true }
        let turn = await withCheckedContinuation { commit.pending.waiters.append($0) }
        switch turn {
        case .done(let error):
            if let error { throw error }
            return false
        case .lead:
            return true
        }
    }
}
