import Foundation
import PostgresNIO
import Stores

/// A `postgres://user:password@host:port/database?sslmode=…` URL, read into postgres-nio's
/// configuration. `?host=/run/postgresql` (a directory) connects through the Unix socket
/// `<dir>/.s.PGSQL.<port>`, as libpq does. `sslmode`: `disable` (the default), `prefer`,
/// `require` (no certificate check), `verify-full`.
public struct DatabaseURL: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var socketDirectory: String?
    public var username: String
    public var password: String?
    public var database: String?
    public var sslMode: String

    public init(parsing text: String) throws(StoreError) {
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql"
        else { throw StoreError(.invalidRecord, "database URL must look like postgres://user@host:port/database") }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        port = components.port ?? Int(query["port"] ?? "") ?? 5432
        socketDirectory = query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil }
        username = components.user ?? query["user"] ?? "postgres"
        password = components.password ?? query["password"]
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? nil : path
        sslMode = query["sslmode"] ?? "disable"
        guard ["disable", "prefer", "require", "verify-full"].contains(sslMode) else {
            throw StoreError(.invalidRecord, "sslmode must be disable, prefer, require or verify-full, not \(sslMode)")
        }
    }

    /// The URL without its password, for messages.
    public var description: String {
        let at = socketDirectory.map { "\($0) (socket)" } ?? "\(host):\(port)"
        return "postgres://\(username)@\(at)/\(database ?? username)"
    }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: username,
                                  password: password, database: database)
        } else {
            configuration = .init(host: host, port: port, username: username, password: password, database: database,
                                  tls: clientTLS)
        }
        // Durable means committed and flushed on the server: never weaker, whatever the server's default.
        configuration.options.additionalStartupParameters = [("synchronous_commit", "on"), ("application_name", "flowd")]
        return configuration
    }

    var connectionConfiguration: PostgresConnection.Configuration {
        get throws {
            var configuration: PostgresConnection.Configuration
            if let socketDirectory {
                configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: username,
                                      password: password, database: database)
            } else {
                configuration = .init(host: host, port: port, username: username, password: password, database: database,
                                      tls: try connectionTLS)
            }
            configuration.options.additionalStartupParameters = [("synchronous_commit", "on"), ("application_name", "flowd")]
            return configuration
        }
    }

    private var tlsConfiguration: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if sslMode != "verify-full" { tls.certificateVerification = .none }
        return tls
    }

    private var clientTLS: PostgresClient.Configuration.TLS {
        switch sslMode {
        case "prefer": .prefer(tlsConfiguration)
        case "require", "verify-full": .require(tlsConfiguration)
        default: .disable
        }
    }

    private var connectionTLS: PostgresConnection.Configuration.TLS {
        get throws {
            switch sslMode {
            case "prefer": .prefer(try NIOSSLContext(configuration: tlsConfiguration))
            case "require", "verify-full": .require(try NIOSSLContext(configuration: tlsConfiguration))
            default: .disable
            }
        }
    }
}
