import FlowdSync
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `flowd` executable run as a child process, for tests of signals and crashes.
public final class FlowdProcess: @unchecked Sendable {
    public let process: Process
    public let port: Int
    /// Everything the child wrote to stderr so far (its log).
    public var log: String { String(decoding: stderrData.withLock { $0 }, as: UTF8.self) }

    private let stderrData = Locked(Data())

    /// The `flowd` binary built beside the running test bundle.
    public static var executable: URL {
        let testBinary = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        var directory = testBinary.deletingLastPathComponent()
        // Inside an .xctest bundle directory on some layouts.
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("flowd").path), directory.path != "/" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("flowd")
    }

    /// Starts `flowd serve --port 0 <arguments>` and waits until it prints its URL.
    public init(serve arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(30)) throws {
        process = Process()
        process.executableURL = FlowdProcess.executable
        process.arguments = ["serve", "--port", "0"] + arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // The child's log is read by a thread of its own with blocking reads until EOF, not
        // with `readabilityHandler`: a dispatch source on a pipe that is closed (and its
        // descriptor reused) while the source is live crashed libdispatch's manager thread
        // under load. The thread holds the pipe, so its descriptor stays open until EOF
        // (`Process.run` closed the parent's copy of the write end).
        let sink = stderrData
        let reader = Thread {
            let fd = stderr.fileHandleForReading.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                sink.withLock { $0.append(contentsOf: buffer[0..<count]) }
            }
            withExtendedLifetime(stderr) {}
        }
        reader.start()
        var output = Data()
        let deadline = ContinuousClock.now + timeout
        var found: Int?
        while found == nil {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty {
                guard process.isRunning, ContinuousClock.now < deadline else { break }
                continue
            }
            output.append(chunk)
            let text = String(decoding: output, as: UTF8.self)
            if let range = text.range(of: #"http://[^ \n]+:(\d+)"#, options: .regularExpression) {
                found = Int(text[range].split(separator: ":").last!)
            }
        }
        guard let port = found else {
            process.terminate()
            throw TestClientError("flowd did not start: \(String(decoding: output, as: UTF8.self)) \(String(decoding: stderrData.withLock { $0 }, as: UTF8.self))")
        }
        self.port = port
    }

    /// A client for the child: the harness's client API, over the wire.
    public var client: TestHTTPClient { TestHTTPClient(port: port) }

    /// Returns once the child's log contains `text` (polled); throws after `timeout`.
    public func waitForLog(_ text: String, timeout: Duration = .seconds(30)) async throws {
        try await waitUntil("\"\(text)\" in the log of flowd", timeout: timeout) { self.log.contains(text) }
    }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the child to exit; returns its status (nil on timeout, after killing it).
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                kill(process.processIdentifier, SIGKILL)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

extension FlowdProcess {
    /// Starts the child off the cooperative pool (waiting for its first line blocks).
    public static func start(serve arguments: [String], environment: [String: String] = [:]) async throws -> FlowdProcess {
        try await TestHTTPClient.blocking { try FlowdProcess(serve: arguments, environment: environment) }
    }
}
