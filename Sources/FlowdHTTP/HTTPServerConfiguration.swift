/// How the server listens and what it bounds.
public struct HTTPServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port; `HTTPServer.port` tells which.
    public var port = 8080
    /// Larger bodies are answered 413, from `Content-Length` or while reading.
    public var maxBodyBytes = 1 << 20
    /// Seconds before a connection with no request in progress is closed.
    public var idleTimeoutSeconds = 30
    /// libmicrohttpd worker threads (each with its own epoll loop).
    public var threads = 2
    public var connectionLimit = 65_000
    public var listenBacklog: Int32 = 4096
    /// Bytes of libmicrohttpd's memory pool per connection, which holds the request head.
    /// A connection touches all of it once it has served a request (libmicrohttpd zeroes the
    /// pool for the next one), so 5,000 keep-alive connections cost 5,000 times this.
    /// Heads that do not fit are answered by libmicrohttpd itself (see docs/operations.md).
    /// 12 KiB keeps 5,000 slow keep-alive runs under 250 MB (`scripts/bench slow`).
    public var connectionMemoryBytes = 12 << 10
    /// A larger request line and header block is answered 431 (below the pool, so that the
    /// pool still has room for the answer). 8 KiB, as Tomcat and Jetty by default.
    public var maxHeadBytes = 8 << 10
    /// A longer request target (path and query) is answered 414.
    public var maxURLBytes = 6 << 10

    public init() {}
}
