import FlowdSync
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL server for tests: `initdb` into a temp dir, `postgres` on a free
/// port of 127.0.0.1 (and a socket in the same dir), stopped and removed by `stop()`.
///
/// initdb and postgres refuse to run as root: as root, they run as the `postgres` user (or
/// `nobody`) through `runuser`, with the temp dir theirs. `shared` starts one per test
/// process, on first use; each test asks it for a database of its own (`makeDatabase`).
public final class PostgresServer: @unchecked Sendable {
    // @unchecked: every stored property is set once in `init`; `nextDatabase` is a `Locked`.
    public let port: Int
    public let directory: URL
    private let binDirectory: String
    private let user: String?
    private let process: Process
    private let nextDatabase = Locked(0)

    /// Why PostgreSQL cannot run here, or nil when it can (its binaries were found).
    public static var unavailableReason: String? {
        binDirectoryPath == nil ? "PostgreSQL is not installed (no initdb in pg_config --bindir nor /usr/lib/postgresql/*/bin)" : nil
    }

    /// One server for the whole test process, started on first use (on a thread of its own:
    /// initdb takes seconds, which must not hold a thread of Swift's pool); it is stopped when
    /// the process exits.
    public static func shared() async throws -> PostgresServer {
        try await TestHTTPClient.blocking { try sharedServer.get() }
    }

    private static let sharedServer: Result<PostgresServer, TestClientError> = {
        do {
            let server = try PostgresServer()
            atexit { try? PostgresServer.sharedServer.get().stop() }
            return .success(server)
        } catch {
            return .failure(TestClientError("the test PostgreSQL did not start: \(error)"))
        }
    }()

    /// Starts a server of its own (for a test that stops it), off Swift's pool.
    public static func start() async throws -> PostgresServer {
        try await TestHTTPClient.blocking { try PostgresServer() }
    }

    private static let binDirectoryPath: String? = {
        var candidates: [String] = []
        if let output = try? run("/usr/bin/env", ["pg_config", "--bindir"]), output.status == 0 {
            candidates.append(output.text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        candidates += versions.map { "\(root)/\($0)/bin" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }()

    public init() throws {
        guard let bin = PostgresServer.binDirectoryPath else {
            throw TestClientError(PostgresServer.unavailableReason ?? "no PostgreSQL")
        }
        binDirectory = bin
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flowd-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            user = getpwnam("postgres") != nil ? "postgres" : "nobody"
            let owner = getpwnam(user!)!.pointee
            chown(directory.path, owner.pw_uid, owner.pw_gid)
        } else {
            user = nil
        }
        let data = directory.appendingPathComponent("data").path
        let initdb = try PostgresServer.run(binDirectory + "/initdb",
                                            ["-D", data, "-U", "flowd", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                                            as: user)
        guard initdb.status == 0 else { throw TestClientError("initdb failed: \(initdb.text)") }
        port = try PostgresServer.freePort()
        process = Process()
        let arguments = ["-D", data, "-p", "\(port)", "-k", directory.path, "-c", "listen_addresses=127.0.0.1",
                         "-c", "fsync=on", "-c", "max_connections=300", "-c", "shared_buffers=32MB"]
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", binDirectory + "/postgres"] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binDirectory + "/postgres")
            process.arguments = arguments
        }
        let log = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try waitUntilReady()
    }

    /// The log of the server, for failure messages.
    public var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
    }

    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let ready = try? PostgresServer.run(binDirectory + "/pg_isready", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "flowd", "-d", "postgres"]),
               ready.status == 0 {
                return
            }
            guard process.isRunning else { throw TestClientError("postgres exited: \(log)") }
            usleep(100_000)
        }
        throw TestClientError("postgres did not become ready: \(log)")
    }

    /// A new, empty database; its URL.
    public func makeDatabase() async throws -> String {
        try await TestHTTPClient.blocking { try self.createDatabase() }
    }

    private func createDatabase() throws -> String {
        let name = nextDatabase.withLock { next -> String in
            next += 1
            return "flowd_test_\(next)"
        }
        try psql("CREATE DATABASE \(name)")
        return url(database: name)
    }

    public func url(database: String) -> String { "postgres://flowd@127.0.0.1:\(port)/\(database)" }

    /// Runs one SQL command as the superuser on the `postgres` database.
    public func psql(_ sql: String, database: String = "postgres") throws {
        let result = try PostgresServer.run(binDirectory + "/psql",
                                            ["-h", "127.0.0.1", "-p", "\(port)", "-U", "flowd", "-d", database, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        guard result.status == 0 else { throw TestClientError("psql \(sql): \(result.text)") }
    }

    /// Stops the server (fast: open sessions are cut) and removes its files.
    public func stop() {
        _ = try? pgctl(["stop", "-m", "fast", "-w"])
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Stops the server, keeping its files, until `restart()`.
    public func pause() async throws {
        try await TestHTTPClient.blocking { try self.pauseBlocking() }
    }

    /// Starts it again on the same port after `pause()`.
    public func restart() async throws {
        try await TestHTTPClient.blocking { try self.restartBlocking() }
    }

    private func pauseBlocking() throws {
        let result = try pgctl(["stop", "-m", "fast", "-w"])
        guard result.status == 0 else { throw TestClientError("pg_ctl stop: \(result.text)") }
    }

    private func restartBlocking() throws {
        let result = try pgctl(["start", "-w", "-l", directory.appendingPathComponent("restart.log").path,
                                "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300 -c shared_buffers=32MB"])
        guard result.status == 0 else { throw TestClientError("pg_ctl start: \(result.text)") }
    }

    private func pgctl(_ arguments: [String]) throws -> (status: Int32, text: String) {
        try PostgresServer.run(binDirectory + "/pg_ctl", ["-D", directory.appendingPathComponent("data").path] + arguments, as: user)
    }

    /// Runs a command to its end; its exit status and output. Spawned and reaped here
    /// (posix_spawn + waitpid): Foundation's `Process` was seen never to reap a `runuser pg_ctl
    /// start` whose server outlives it.
    private static func run(_ executable: String, _ arguments: [String], as user: String? = nil) throws -> (status: Int32, text: String) {
        let argv = user.map { ["/usr/sbin/runuser", "-u", $0, "--", executable] } ?? [executable]
        let all = argv + arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("flowd-pg-output-\(UUID().uuidString)").path
        defer { unlink(output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments = all.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, all[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw TestClientError("cannot run \(all[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// A port nobody listens on now (bound to port 0, then released).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestClientError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Int32 in
                guard bind(fd, sa, length) == 0 else { return -1 }
                return getsockname(fd, sa, &length)
            }
        }
        guard bound == 0 else { throw TestClientError("bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
