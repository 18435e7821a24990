import FlowdAPI
import ServiceLifecycle

/// The run backend's own work (PostgreSQL: the lease renewal, the listener, expired leases,
/// cancels across replicas, live events; JSONL: none) as a service of `serve`'s group, then
/// the stores' close (`FlowdApp.shutdown`: what is still being written is flushed).
///
/// It stops after the HTTP service: runs still draining renew their lease and hear cancels
/// until the last request is answered; the stores close only once nothing uses them.
struct BackendService: Service {
    let app: FlowdApp

    func run() async throws {
        let app = self.app
        await cancelWhenGracefulShutdown { await app.runBackendWork() }
        // A backend with nothing to do returns at once; its stores stay open until the shutdown.
        try? await gracefulShutdown()
        await app.shutdown()
    }
}
