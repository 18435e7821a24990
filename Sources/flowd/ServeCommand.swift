import Agents
import ArgumentParser
import FlowdAPI
import FlowdBackends
import FlowdHTTP
import Foundation
import Logging

/// `flowd serve`: the HTTP server, until SIGTERM or SIGINT; then a drain and exit 0.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @OptionGroup var storage: StorageOptions
    @OptionGroup var options: ServeOptions

    func run() async throws {
        TerminationSignals.install()
        let environment = Environment.current
        var configuration = FlowdConfiguration()
        try storage.apply(to: &configuration, environment: environment)
        try options.apply(to: &configuration, environment: environment)
        let logger = makeLogger(environment: environment)

        let app = try await openApp(configuration, logger: logger)
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
        print("flowd listening on http://\(shownHost):\(server.port)")
        fflush(nil)

        let retention = Duration.seconds(configuration.runRetentionHours * 3600)
        let runs = app.runs
        let pruning = Task { await runs.pruneRecords(retention: retention) }
        var signals = TerminationSignals.stream().makeAsyncIterator()
        let signal = await signals.next()
        logger.info("draining", metadata: ["signal": "\(signal ?? 0)", "requests": "\(server.inFlightCount)", "runs": "\(app.runs.runsInFlight)"])

        // Probes and new runs answer 503 from here on; what is going on may finish.
        app.lifecycle.beginDrain()
        pruning.cancel()
        let deadline = ContinuousClock.now + .seconds(configuration.drainTimeoutSeconds)
        let runsDone = await app.runs.waitForRuns(timeout: deadline - ContinuousClock.now)
        let requestsDone = await server.waitForInFlight(timeout: max(.zero, deadline - ContinuousClock.now))
        if !runsDone || !requestsDone {
            logger.warning("drain timeout: cancelling what is left", metadata: ["requests": "\(server.inFlightCount)", "runs": "\(app.runs.runsInFlight)"])
            app.runs.cancelAll()
            server.cancelInFlight()
            _ = await app.runs.waitForRuns(timeout: .seconds(10))
            _ = await server.waitForInFlight(timeout: .seconds(10))
        }
        await server.stop()
        await app.shutdown()
        logger.info("stopped")
        LogOutput.shared.flush()
    }
}

/// Loads agents and opens the stores; a problem is printed and is exit status 2.
func openApp(_ configuration: FlowdConfiguration, logger: Logger) async throws -> FlowdApp {
    do {
        return try await FlowdApp.open(configuration: configuration, logger: logger)
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
