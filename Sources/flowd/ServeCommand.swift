import Agents
import ArgumentParser
import FlowdAPI
import FlowdBackends
import FlowdHTTP
import Foundation
import Logging
import ServiceLifecycle

/// `flowd serve`: the HTTP server, until SIGTERM or SIGINT; then a drain and exit 0.
///
/// The long-running parts are the services of one `ServiceGroup`, whose graceful-shutdown
/// signals are SIGTERM and SIGINT. The group stops them one by one in the reverse of their
/// order here, each only once the one before has returned, which is the shutdown order of
/// docs/architecture.md: the pruner → the HTTP server (drain, cancel what is left, stop) →
/// the backend's work and the stores (`FlowdApp.shutdown`) → the log writer. A second signal
/// during the drain changes nothing.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @OptionGroup var storage: StorageOptions
    @OptionGroup var options: ServeOptions

    func run() async throws {
        let environment = Environment.current
        var configuration = FlowdConfiguration()
        try storage.apply(to: &configuration, environment: environment)
        try options.apply(to: &configuration, environment: environment)
        let logger = makeLogger(environment: environment)

        let app = try await openApp(configuration, logger: logger, backendWork: .caller)
        do {
            // Before the first request: resumed runs go first in their stories' queues.
            try await app.runs.resumeInterrupted()
        } catch {
            logger.critical("cannot resume the runs an earlier process left unfinished: \(error)")
            throw ExitCode(2)
        }
        let server = app.makeServer()
        do {
            try server.start()
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
        let shownHost = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host

        let http = HTTPService(server: server, app: app, drainTimeout: .seconds(configuration.drainTimeoutSeconds),
                               listening: "flowd listening on http://\(shownHost):\(server.port)", logger: logger)
        let pruning = RunPruningService(runs: app.runs, retention: .seconds(configuration.runRetentionHours * 3600))
        // Started first and stopped last: the reverse of this order is the shutdown order.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: LogOutput.shared, serviceName: "log writer"),
                .init(service: BackendService(app: app), serviceName: "run backend"),
                .init(service: http, serviceName: "http server"),
                .init(service: pruning, serviceName: "run pruner"),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("stopped")
        LogOutput.shared.flush()
    }
}

/// Loads agents and opens the stores; a problem is printed and is exit status 2.
func openApp(_ configuration: FlowdConfiguration, logger: Logger,
             backendWork: FlowdApp.BackendWork = .app) async throws -> FlowdApp {
    do {
        return try await FlowdApp.open(configuration: configuration, logger: logger, backendWork: backendWork)
    } catch let error as CatalogError {
        for problem in error.problems { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
        throw ExitCode(2)
    } catch {
        FileHandle.standardError.write(Data("flowd: \(error)\n".utf8))
        throw ExitCode(2)
    }
}

/// swift-log, bootstrapped once: text lines, or JSON lines with `FLOWD_LOG_FORMAT=json`;
/// level from `FLOWD_LOG_LEVEL` (default info).
func makeLogger(environment: Environment) -> Logger {
    let level = environment.variables["FLOWD_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    let json = environment.variables["FLOWD_LOG_FORMAT"]?.lowercased() == "json"
    LoggingSystem.bootstrap { label in
        var handler = FlowdLogHandler(label: label, json: json)
        handler.logLevel = level
        return handler
    }
    var logger = Logger(label: "flowd")
    logger.logLevel = level
    return logger
}
