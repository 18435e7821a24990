
/// The group commit of an append-only log, kept by the store actor that owns the log.
///
/// Lines accepted while a batch is being written wait in `pending` and go out together in
/// the next write and `fdatasync`. The writer that finds no batch in flight leads: it takes
/// the pending batch, writes it, tells the batch's writers how it went (`release`), and
/// hands the lead to a writer of the next batch (`handOn`). Invariant: while `syncing`,
/// exactly one task leads; every waiter is resumed exactly once.
struct GroupCommit<Op> {
    /// What a waiting writer is told: its batch is done (with this error, if any), or it
    /// must lead the next batch.
    enum Turn {
        case done(StoreError?)
        case lead
    }

    struct Batch {
        var bytes: [UInt8] = []
        var ops: [Op] = []
        /// Writers of this batch, except the one that will lead it.
        var waiters: [CheckedContinuation<Turn, Never>] = []
    }

    /// Lines accepted but not yet handed to the I/O thread.
    var pending = Batch()
    /// A leader is writing a batch (or compacting); new lines wait in `pending`.
    private(set) var syncing = false

    /// Takes the lead when no batch is in flight; false when the caller must wait its turn.
    mutating func claimLead() -> Bool {
        guard !syncing else { return false }
        syncing = true
        return true
    }

    /// The pending batch, for the leader to write; `pending` starts empty again.
    mutating func takeBatch() -> Batch {
        defer { pending = Batch() }
        return pending
    }

    /// Tells the writers of a written batch how it went.
    static func release(_ batch: Batch, error: StoreError?) {
        for waiter in batch.waiters { waiter.resume(returning: .done(error)) }
    }

    /// After a batch: with a `failure`, fails every writer queued meanwhile and ends the
    /// lead; otherwise hands the lead to the first of them, or ends it when none waits.
    mutating func handOn(failure: StoreError?) {
        if let failure {
            let queued = takeBatch()
            GroupCommit.release(queued, error: failure)
            syncing = false
        } else if !pending.waiters.isEmpty {
            pending.waiters.removeFirst().resume(returning: .lead)
        } else {
            syncing = false
        }
    }
}
