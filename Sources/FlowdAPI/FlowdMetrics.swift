import CoreMetrics
import Foundation
import Prometheus
import FlowdSync

/// The server's metrics, kept through swift-metrics in a Prometheus registry of this app's
/// own (so several apps in one process, as in tests, do not mix), and rendered for
/// `GET /metrics` in the Prometheus text format.
///
/// Handles are created once per label set and cached: recording is an atomic update.
public final class FlowdMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let counters = Locked<[String: CoreMetrics.Counter]>([:])
    private let timers = Locked<[String: CoreMetrics.Timer]>([:])
    private let inFlight: CoreMetrics.Gauge
    /// Per-request handles, by a key that costs no string building on the hot path.
    private let requestHandles = Locked<[RequestKey: (counter: CoreMetrics.Counter, timer: CoreMetrics.Timer)]>([:])

    private let runHandles = Locked<[PairKey: (counter: CoreMetrics.Counter, timer: CoreMetrics.Timer)]>([:])
    private let agentTimers = Locked<[PairKey: CoreMetrics.Timer]>([:])
    private let usageCounters = Locked<[PairKey: (prompt: CoreMetrics.Counter, completion: CoreMetrics.Counter)]>([:])
    private let memoryCommitTimer: CoreMetrics.Timer

    private struct RequestKey: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    /// Two label values (flow and outcome, agent and outcome).
    private struct PairKey: Hashable {
        let first: String
        let second: String
    }

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let buckets: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        factory.defaultDurationHistogramBuckets = buckets
        self.factory = factory
        inFlight = CoreMetrics.Gauge(label: "flowd_runs_in_flight", dimensions: [], factory: factory)
        memoryCommitTimer = CoreMetrics.Timer(label: "flowd_memory_commit_duration_seconds", dimensions: [], factory: factory)
    }

    /// One HTTP exchange: `flowd_http_requests_total{route,status}` and the latency histogram.
    func request(method: String, route: String, status: Int, duration: Duration) {
        let key = RequestKey(method: method, route: route, status: status)
        let handles = requestHandles.withLock { cache in
            if let handles = cache[key] { return handles }
            let handles = (counter("flowd_http_requests_total", [("method", method), ("route", route), ("status", String(status))]),
                           timer("flowd_http_request_duration_seconds", [("route", route)]))
            cache[key] = handles
            return handles
        }
        handles.counter.increment()
        handles.timer.recordNanoseconds(duration.nanoseconds)
    }

    /// One finished run: `flowd_runs_total{flow,outcome}` and `flowd_run_duration_seconds{flow}`.
    func run(flow: String, outcome: String, duration: Duration) {
        let handles = runHandles.withLock { cache in
            let key = PairKey(first: flow, second: outcome)
            if let handles = cache[key] { return handles }
            let handles = (counter("flowd_runs_total", [("flow", flow), ("outcome", outcome)]),
                           timer("flowd_run_duration_seconds", [("flow", flow)]))
            cache[key] = handles
            return handles
        }
        handles.counter.increment()
        handles.timer.recordNanoseconds(duration.nanoseconds)
    }

    /// One agent execution, completed or failed.
    func agent(_ agent: String, outcome: String, duration: Duration) {
        let handle = agentTimers.withLock { cache in
            let key = PairKey(first: agent, second: outcome)
            if let handle = cache[key] { return handle }
            let handle = timer("flowd_agent_duration_seconds", [("agent", agent), ("outcome", outcome)])
            cache[key] = handle
            return handle
        }
        handle.recordNanoseconds(duration.nanoseconds)
    }

    /// Tokens an llm attempt reported: `flowd_llm_prompt_tokens_total{flow,agent}` and
    /// `flowd_llm_completion_tokens_total{flow,agent}`.
    func llmUsage(flow: String, agent: String, promptTokens: Int, completionTokens: Int) {
        let handles = usageCounters.withLock { cache in
            let key = PairKey(first: flow, second: agent)
            if let handles = cache[key] { return handles }
            let handles = (counter("flowd_llm_prompt_tokens_total", [("flow", flow), ("agent", agent)]),
                           counter("flowd_llm_completion_tokens_total", [("flow", flow), ("agent", agent)]))
            cache[key] = handles
            return handles
        }
        handles.prompt.increment(by: Int64(promptTokens))
        handles.completion.increment(by: Int64(completionTokens))
    }

    func memoryCommit(duration: Duration) {
        memoryCommitTimer.recordNanoseconds(duration.nanoseconds)
    }

    /// The Prometheus text exposition, with `flowd_runs_in_flight` as of now.
    func render(runsInFlight: Int) -> [UInt8] {
        inFlight.record(runsInFlight)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        FlowdMetrics.cached(counters, label, dimensions) { CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        FlowdMetrics.cached(timers, label, dimensions) { CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory) }
    }

    /// The handle for `label` and `dimensions`, made on first use.
    private static func cached<Handle>(_ cache: Locked<[String: Handle]>, _ label: String, _ dimensions: [(String, String)],
                                       make: () -> Handle) -> Handle {
        let key = key(label, dimensions)
        return cache.withLock { handles in
            if let handle = handles[key] { return handle }
            let handle = make()
            handles[key] = handle
            return handle
        }
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        var key = label
        for (name, value) in dimensions { key += "\u{0}\(name)=\(value)" }
        return key
    }
}
