import FlowdAPI
import ServiceLifecycle

/// Prunes finished run records older than the retention, now and then every hour, as a
/// service of `serve`'s group. It is the first to stop at shutdown: it has nothing to finish,
/// and a prune must not compete with the drain for the store.
struct RunPruningService: Service {
    let runs: RunService
    let retention: Duration

    func run() async throws {
        let (runs, retention) = (self.runs, self.retention)
        // The loop sleeps an hour between prunes: the shutdown cancels it rather than wait.
        await cancelWhenGracefulShutdown { await runs.pruneRecords(retention: retention) }
    }
}
