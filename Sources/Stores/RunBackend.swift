import Foundation

/// Everything durable about a run's life, on one kind of storage. The API holds one and
/// never knows which: `JSONLRunBackend` (one process, the data directory) or
/// `PostgresRunBackend` (any number of replicas on one database). See docs/architecture.md.
///
/// A run's life through it: `arrive` (its place in its story's order), `waitForTurn`,
/// `publish` for each event while it goes, then either `commit` (it succeeded) or `finish`
/// (any other end). A process that does not hold a run reads it with `record`,
/// `storedEvents` and `follow`, and asks for its cancel with `requestCancel`.
///
/// Invariants every implementation keeps:
/// - `commit` makes a run's memory, its final record and all its events durable as one
///   unit, or writes nothing. It throws `.cancelled`, writing nothing, when a cancel
///   requested elsewhere came first.
/// - `finish` never overwrites a requested cancel: it throws `.cancelled` then, writing
///   nothing, and the run is to end `cancelled`.
/// - A run that a stopped process left unfinished is found by the backend itself: at the
///   next start (the embedded store) or once its replica's lease expires (the database).
///   With `RestartPolicy.resume` it is handed back (`InterruptedRun`, `resumed` counted,
///   durably) to exactly one process, which goes on with it; with `.fail` it ends `failed`
///   with `RunFinish.interrupted`.
/// - A run's journal (`journal`) and its idempotency key (kept in its record) live and are
///   pruned with its record. A key names at most one run among all processes.
public protocol RunBackend: Sendable {
    /// Agents' memory (the story's contexts a run reads; the memory routes).
    var memory: any MemoryStore { get }
    /// `docs/<id>.md`, or their rows.
    var documents: any DocumentStore { get }

    /// Whether the storage can be reached now. Cheap: checked as each run is admitted.
    var isAvailable: Bool { get }
    /// Why new runs cannot be taken now (`/readyz` says it), or nil.
    func readinessProblem() -> String?

    /// The run has arrived: its place in its story's order, among every process sharing the
    /// storage. When `durable`, it survives a crash before this returns (its id is about to
    /// be handed out); otherwise nothing depends on it surviving one (`/run` without a
    /// stream: nobody learns the id before the run ends, and the end stores the record).
    /// A record with an idempotency key whose key another run has already: nothing is
    /// stored, and that run's id comes back (`.duplicate`). The key is stored in the same
    /// write as the record.
    @discardableResult
    func arrive(_ record: RunRecord, durable: Bool) async throws(StoreError) -> Arrival

    /// The run started with idempotency key `key`, if its record is kept.
    func runID(forKey key: String) async throws(StoreError) -> String?

    /// Appends completed steps to a run's journal, with the events emitted since its last
    /// journal write, durably before this returns; `first` is the number (1, 2, …) of
    /// `steps[0]` in the journal. A run not yet durably stored (a `/run`'s arrival) is stored
    /// with them, from `record`.
    func journal(_ record: RunRecord, steps: [RunStep], first: Int, events: [RunEvent]) async throws(StoreError)

    /// A run's journal as stored (a finished run's for a retry); nil when the run is unknown.
    func steps(of runID: String) async throws(StoreError) -> [RunStep]?

    /// The runs an earlier process left unfinished, in arrival order, handed to this one to
    /// resume (embedded store, `RestartPolicy.resume`); called once, at start. Empty for a
    /// database, whose lost runs come through `run(cancel:resume:)`.
    func takeOverInterrupted() async throws(StoreError) -> [InterruptedRun]

    /// Waits until it is `record`'s turn in its story among the processes sharing the
    /// storage (the executor orders the runs of one process). When `announce`, the run is
    /// stored as `running` once its turn came. False when the task was cancelled while waiting.
    func waitForTurn(_ record: RunRecord, announce: Bool) async throws(StoreError) -> Bool

    /// A progress event of a run whose id was handed out, for processes that follow it.
    func publish(_ runID: String, _ event: RunEvent)

    /// Commits a run's success: `memory` and `finish` (its final record and every event), as
    /// one durable unit, before this returns.
    func commit(_ memory: MemoryTransaction, finish: RunFinish) async throws(StoreError)

    /// Stores the end of a run that did not succeed, durably. Where the story's later runs
    /// wait on it, a storage failure is retried until it is stored or the task is cancelled.
    func finish(_ finish: RunFinish) async throws(StoreError)

    /// A run's record, as stored; nil when unknown (or pruned).
    func record(_ runID: String) async throws(StoreError) -> RunRecord?

    /// A page of the stored runs that match `query`, newest first (`RunCursor` order), those
    /// before `query.before` only: at most `limit`, with whether more may follow. Status is
    /// the stored one (a live run's may be older: the caller merges its live runs). Records of
    /// flows no longer configured are listed like any other. Never scans all runs: an index
    /// (in RAM, or the database's) finds the page.
    func list(_ query: RunQuery) async throws(StoreError) -> RunPage

    /// The stored events after `after` of a run this process does not hold; nil when unknown.
    func storedEvents(_ runID: String, after: Int) async throws(StoreError) -> StoredEvents?

    /// Sends the events after `after` of a run going on in another process as they are
    /// stored, until its terminal event, or until `isClosed` says the follower left.
    func follow(_ runID: String, after: Int, send: @escaping @Sendable (RunEvent) -> Void,
                isClosed: @escaping @Sendable () -> Bool) async

    /// Asks the process running `runID` to cancel it. The run's record, or nil when no other
    /// process holds an unfinished run of that id.
    func requestCancel(_ runID: String) async throws(StoreError) -> RunRecord?

    /// The backend's own work until the task is cancelled (leases, notifications, the runs
    /// of lost replicas). `cancel` gets the id of a run of this process that someone asked,
    /// elsewhere, to cancel; `resume` gets runs of lost processes that this one took over,
    /// in arrival order, to go on with.
    func run(cancel: @escaping @Sendable (String) -> Void, resume: @escaping @Sendable ([InterruptedRun]) -> Void) async

    /// Drops the records of runs that finished before `cutoff`; how many.
    func prune(finishedBefore cutoff: Date) async throws(StoreError) -> Int

    /// Waits until everything accepted is durable (at exit); a database's connections close.
    func close() async throws(StoreError)
}
