import CMicroHTTPD
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
import FlowdSync
#endif

// This file is the only one that calls libmicrohttpd and the only one that holds
// `Unmanaged` references and `OpaquePointer`s; everything else sees Swift values.

/// Called once per finished exchange (for access logs and metrics); `route` is nil when no
/// route matched, `responseHeaders` are those of the answer.
public typealias HTTPExchangeObserver = @Sendable (_ head: HTTPRequestHead, _ route: String?, _ status: Int,
                                                   _ responseHeaders: HTTPHeaders, _ duration: Duration) -> Void

/// An HTTP/1.1 server on libmicrohttpd whose handlers are Swift `async` functions.
///
/// Each request is read on a libmicrohttpd thread, which starts the handler's task
/// (`Task.immediate`: it runs on that thread until its first suspension, so a handler
/// that never suspends, such as a probe, answers at once and its connection is queued
/// without being suspended). Otherwise the connection is suspended; the task stores the
/// response and resumes the connection, which then queues it. No libmicrohttpd thread
/// ever waits on a handler: whatever awaits continues on Swift's pool.
/// Invariant: every suspended connection is resumed exactly once (also when the
/// handler throws or is cancelled), and the daemon is stopped only once none is.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let observer: HTTPExchangeObserver?
    let logger: Logger
    let framing: RequestFraming
    /// Routing and error answers, shared with the in-process test harness.
    public let responder: Responder

    private let daemon = Locked<DaemonHandle?>(nil)
    private let boundPort = Atomic<Int>(0)
    /// Connections whose handler runs or which are suspended (low bits) and, in the top bit,
    /// whether new ones are still admitted. Lock-free: it is touched twice by every request.
    private let suspension = Atomic<Int>(0)
    private static let stoppingBit = 1 << 62
    /// Requests handed to a handler whose exchange has not ended yet (answer sent, or the
    /// client gone): `stop` lets them finish sending before it closes the connections.
    private let exchanges = Atomic<Int>(0)
    /// Handler tasks in flight, sharded so that concurrent requests rarely share a lock.
    private let tasks = (0..<HTTPServer.taskShardCount).map { _ in TaskShard() }
    private static let taskShardCount = 64
    private let nextTaskID = Atomic<UInt64>(0)
    /// Woken when the server may have gone quiet: a task shard emptied, the last suspension
    /// ended while stopping, the last exchange ended. `waitForInFlight` and `stop` wait on it.
    private let quiet = WaitList()

    /// - Parameters:
    ///   - gate: looked at with the headers only, before routing; a response it returns is
    ///     the answer (an API key check: its 401 comes before 404 and 405).
    ///   - observer: told of each exchange when it ends.
    public init(configuration: HTTPServerConfiguration, router: Router, logger: Logger,
                gate: (@Sendable (HTTPRequestHead) -> HTTPResponse?)? = nil,
                observer: HTTPExchangeObserver? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.observer = observer
        self.framing = RequestFraming(maxHeadBytes: configuration.maxHeadBytes, maxURLBytes: configuration.maxURLBytes)
        self.responder = Responder(router: router, gate: gate, maxBodyBytes: configuration.maxBodyBytes, logger: logger)
    }

    /// The port the server listens on (the real one when configured with 0).
    public var port: Int { boundPort.load(ordering: .acquiring) }

    /// Binds, listens and starts the worker threads; returns once connections are accepted.
    public func start() throws(HTTPServerError) {
        raiseOpenFileLimit()
        let socket = try ListeningSocket.open(host: configuration.host, port: configuration.port, backlog: configuration.listenBacklog)
        let flags = MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        let retained = Unmanaged.passRetained(self)
        let pointer = flowd_mhd_start(
            UInt32(flags), socket.fd,
            accessHandler, retained.toOpaque(),
            requestCompleted, retained.toOpaque(),
            UInt32(max(1, configuration.threads)),
            UInt32(configuration.connectionLimit),
            UInt32(max(0, configuration.idleTimeoutSeconds)),
            configuration.connectionMemoryBytes,
            mhdLogSink)
        guard let pointer else {
            retained.release()
            close(socket.fd)
            throw HTTPServerError("libmicrohttpd did not start on \(configuration.host):\(socket.port)")
        }
        daemon.withLock { $0 = DaemonHandle(pointer: pointer, retained: retained) }
        boundPort.store(socket.port, ordering: .releasing)
    }

    /// Connections whose handler runs or which are suspended (a stream waiting for its
    /// producer): what `stop` waits for before it may stop the daemon.
    var suspendedCount: Int { suspension.load(ordering: .sequentiallyConsistent) & ~HTTPServer.stoppingBit }

    /// Requests whose handler is still running.
    public var inFlightCount: Int { tasks.reduce(0) { $0 + $1.slots.withLock { $0.count } } }

    /// Waits until no handler runs, or until `timeout` has passed; true when none runs.
    /// Woken by the handler that empties its shard, not by polling.
    public func waitForInFlight(timeout: Duration) async -> Bool {
        await quiet.wait(until: { inFlightCount == 0 }, timeout: timeout)
    }

    /// Cancels every running handler; each still answers and resumes its connection.
    public func cancelInFlight() {
        for shard in tasks {
            let running = shard.slots.withLock { slots -> [Task<Void, Never>] in
                var running: [Task<Void, Never>] = []
                for (id, slot) in slots {
                    switch slot {
                    case .starting: slots[id] = .starting(cancelled: true)
                    case .running(let task): running.append(task)
                    }
                }
                return running
            }
            for task in running { task.cancel() }
        }
    }

    /// Stops admitting new work, waits (up to `timeout`) until no connection is suspended
    /// and every handled request's answer has gone out, then stops the daemon, which closes
    /// the listening socket. Requests that arrive meanwhile are answered 503 at once.
    public func stop(timeout: Duration = .seconds(10)) async {
        suspension.bitwiseOr(HTTPServer.stoppingBit, ordering: .sequentiallyConsistent)
        let deadline = ContinuousClock.now + timeout
        let unsuspended = await quiet.wait(until: { suspendedCount == 0 }, timeout: timeout)
        guard unsuspended else {
            // libmicrohttpd 0.9.75 aborts the process when stopped with a suspended connection
            // (shim.h checks the version at compile time).
            logger.error("connections still suspended at shutdown; leaving the daemon to the process exit")
            return
        }
        // A resumed connection still has to queue and send its answer.
        _ = await quiet.wait(until: { exchanges.load(ordering: .sequentiallyConsistent) == 0 },
                             timeout: max(.zero, deadline - ContinuousClock.now))
        guard let handle = daemon.withLock({ state -> DaemonHandle? in defer { state = nil }; return state }) else { return }
        // No MHD_quiesce_daemon first: in 0.9.75 it races the epoll worker threads, which also
        // take the listen socket out of their epoll sets once they see it quiesced, and the
        // loser's failed epoll_ctl is an MHD_PANIC (seen here: "Failed to remove listen FD
        // from epoll set", the moment stop follows the last exchange's end). MHD_stop_daemon
        // stops accepting and closes the listen socket itself.
        MHD_stop_daemon(handle.pointer)
        handle.retained.release()
    }

    // MARK: - Bridge state

    /// Counts a suspension unless the server is stopping.
    fileprivate func admitSuspension() -> Bool {
        var current = suspension.load(ordering: .relaxed)
        while current & HTTPServer.stoppingBit == 0 {
            let (exchanged, original) = suspension.compareExchange(
                expected: current, desired: current + 1, successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    fileprivate func endSuspension() {
        // Only `stop` waits for this count, and only once the stopping bit is set.
        if suspension.subtract(1, ordering: .sequentiallyConsistent).newValue == HTTPServer.stoppingBit { quiet.notify() }
    }

    fileprivate func beginExchange() { exchanges.add(1, ordering: .sequentiallyConsistent) }
    fileprivate func endExchange() {
        if exchanges.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 { quiet.notify() }
    }

    fileprivate func dispatch(_ request: HTTPRequest, handler: @escaping HTTPHandler, context: RequestContext, connection: ConnectionHandle) {
        let id = nextTaskID.wrappingAdd(1, ordering: .relaxed).newValue
        let shard = tasks[Int(id % UInt64(HTTPServer.taskShardCount))]
        // The task is created outside the lock (it may finish before it is stored: then
        // its slot is already gone); a cancel that comes before it is stored is kept.
        shard.slots.withLock { $0[id] = .starting(cancelled: false) }
        let task = Task.immediate {
            let response = await self.responder.respond(to: request, with: handler)
            let shardEmpty = shard.slots.withLock { slots -> Bool in
                slots.removeValue(forKey: id)
                return slots.isEmpty
            }
            if shardEmpty { self.quiet.notify() }
            let resume = context.bridge.withLock { state -> Bool in
                guard case .suspended = state else {
                    state = .answeredInline(response)  // still inside `dispatch`: it queues this
                    return false
                }
                state = .answered(response)
                return true
            }
            self.endSuspension()
            if resume { MHD_resume_connection(connection.pointer) }
        }
        let cancelNow = shard.slots.withLock { slots -> Bool in
            guard case .starting(let cancelled)? = slots[id] else { return false }
            slots[id] = .running(task)
            return cancelled
        }
        if cancelNow { task.cancel() }
    }

    /// The framing checks, then the gate, routing and `Content-Length`, in the order of
    /// precedence the API promises (a head whose framing is not trusted is never routed).
    fileprivate func earlyAnswer(for context: RequestContext, framing head: RequestFraming.Head) -> HTTPResponse? {
        if let response = framing.answer(to: head) { return response }
        switch responder.decide(context.head) {
        case .answer(let response, let route):
            context.route = route  // a refused request is reported under its route
            return response
        case .handle(let route, let parameters, let handler, let contentLength):
            (context.route, context.parameters, context.handler) = (route, parameters, handler)
            if let contentLength { context.body.reserveCapacity(contentLength) }
        }
        return nil
    }
}

/// One lock's worth of the handler tasks in flight.
private final class TaskShard: Sendable {
    enum Slot {
        /// Dispatched; the task is not stored yet (and may have to be cancelled once it is).
        case starting(cancelled: Bool)
        case running(Task<Void, Never>)
    }

    let slots = Locked<[UInt64: Slot]>([:])
}

/// Per-request state. Touched by the connection's libmicrohttpd thread only, except
/// `bridge`, which the handler task fills with its response.
private final class RequestContext: @unchecked Sendable {
    enum Phase {
        case reading
        case rejected(HTTPResponse)
        case dispatched
        case answered
    }

    let head: HTTPRequestHead
    let started = ContinuousClock.now
    var route: String?
    var parameters: [String: String] = [:]
    var handler: HTTPHandler?
    var body: [UInt8] = []
    var phase = Phase.reading
    /// Counted in the server's exchanges until `requestCompleted`.
    var handled = false
    var status = 0
    var responseHeaders = HTTPHeaders()
    let bridge = Locked<Bridge>(.started)

    /// Where the handler stands, between the libmicrohttpd thread and the handler's task.
    enum Bridge {
        /// Started; no answer yet, and the connection is not suspended yet.
        case started
        /// Answered before the connection was suspended: the libmicrohttpd thread queues it.
        case answeredInline(HTTPResponse)
        /// The connection is suspended; the handler's answer resumes it.
        case suspended
        /// Answered after the suspension; the connection was resumed to queue it.
        case answered(HTTPResponse)
        case taken
    }

    init(head: HTTPRequestHead) { self.head = head }
}

/// A connection pointer handed to a task; libmicrohttpd allows resuming from any thread.
private struct ConnectionHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// The running daemon (which owns the listen socket from `start` on); owned by the server's mutex.
private struct DaemonHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    let retained: Unmanaged<HTTPServer>
}

/// A streaming body and the connection it is sent on, the `cls` of the reader callback.
private final class StreamContext: @unchecked Sendable {
    let stream: ResponseStream
    let connection: ConnectionHandle
    let server: HTTPServer

    init(stream: ResponseStream, connection: ConnectionHandle, server: HTTPServer) {
        self.stream = stream
        self.connection = connection
        self.server = server
    }
}

// MARK: - libmicrohttpd callbacks

private let mhdLogger = Logger(label: "flowd.http.libmicrohttpd")

// Written once, before any daemon starts, and only read by libmicrohttpd afterwards.
private nonisolated(unsafe) let mhdLogSink: UnsafeMutablePointer<flowd_mhd_log_fn?> = {
    let sink = UnsafeMutablePointer<flowd_mhd_log_fn?>.allocate(capacity: 1)
    sink.initialize(to: { _, message in
        guard let message else { return }
        mhdLogger.warning("\(String(cString: message).trimmingASCIISpaces)")
    })
    return sink
}()

private func accessHandler(
    cls: UnsafeMutableRawPointer?, connection: OpaquePointer?, url: UnsafePointer<CChar>?,
    method: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?, uploadData: UnsafePointer<CChar>?,
    uploadDataSize: UnsafeMutablePointer<Int>?, conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let conCls, let uploadDataSize else { return .NO }
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()

    guard let stored = conCls.pointee else {
        // First call: headers only.
        let rawPath = url.map { String(cString: $0) } ?? "/"
        let (query, rawQueryBytes) = readQuery(connection)
        let head = HTTPRequestHead(
            method: method.map { String(cString: $0) } ?? "GET",
            rawPath: rawPath,
            headers: readHeaders(connection),
            query: query)
        let framing = RequestFraming.Head(
            version: version.map { String(cString: $0) } ?? "",
            headers: head.headers,
            headBytes: flowd_mhd_request_header_size(connection),
            urlBytes: rawPath.utf8.count + rawQueryBytes)
        let context = RequestContext(head: head)
        conCls.pointee = Unmanaged.passRetained(context).toOpaque()
        if let answer = server.earlyAnswer(for: context, framing: framing) {
            context.phase = .answered
            return queue(answer, on: connection, context: context, server: server)
        }
        return .YES
    }

    let context = Unmanaged<RequestContext>.fromOpaque(stored).takeUnretainedValue()
    let size = uploadDataSize.pointee
    switch context.phase {
    case .reading where size > 0:
        if context.body.count + size > server.configuration.maxBodyBytes {
            context.body = []
            context.phase = .rejected(Responder.tooLarge(server.configuration.maxBodyBytes))
        } else if let uploadData {
            uploadData.withMemoryRebound(to: UInt8.self, capacity: size) {
                context.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: size))
            }
        }
        uploadDataSize.pointee = 0
        return .YES

    case .reading:
        // The whole request is here: start the handler, then queue its answer if it has one
        // already, else suspend. The bridge's lock orders the suspension before any resume.
        guard let handler = context.handler, let route = context.route else { return .NO }
        guard server.admitSuspension() else {
            context.phase = .answered
            let answer = HTTPResponse.detail(HTTPStatus.unavailable, "Server is shutting down", headers: HTTPHeaders([("Retry-After", "1")]))
            return queue(answer, on: connection, context: context, server: server)
        }
        context.phase = .dispatched
        context.handled = true
        server.beginExchange()
        let request = HTTPRequest(head: context.head, route: route, parameters: context.parameters, body: context.body)
        context.body = []
        server.dispatch(request, handler: handler, context: context, connection: ConnectionHandle(pointer: connection))
        let inline = context.bridge.withLock { state -> HTTPResponse? in
            if case .answeredInline(let answer) = state {
                state = .taken
                return answer
            }
            MHD_suspend_connection(connection)
            state = .suspended
            return nil
        }
        guard let inline else { return .YES }
        context.phase = .answered
        return queue(inline, on: connection, context: context, server: server)

    case .rejected(let answer):
        if size > 0 {
            uploadDataSize.pointee = 0  // read and dropped: the answer is already decided
            return .YES
        }
        context.phase = .answered
        return queue(answer, on: connection, context: context, server: server)

    case .dispatched:
        // Resumed: the task has stored its response.
        guard let answer = context.bridge.withLock({ state -> HTTPResponse? in
            guard case .answered(let answer) = state else { return nil }
            state = .taken
            return answer
        }) else {
            return .NO
        }
        context.phase = .answered
        return queue(answer, on: connection, context: context, server: server)

    case .answered:
        uploadDataSize.pointee = 0
        return .YES
    }
}

private func queue(_ answer: HTTPResponse, on connection: OpaquePointer, context: RequestContext, server: HTTPServer) -> MHD_Result {
    let response: OpaquePointer?
    switch answer.body {
    case .bytes(let bytes):
        response = bytes.withUnsafeBytes { buffer in
            MHD_create_response_from_buffer(buffer.count, UnsafeMutableRawPointer(mutating: buffer.baseAddress), .RESPMEM_MUST_COPY)
        }
    case .stream(let stream):
        let handle = ConnectionHandle(pointer: connection)
        stream.attach { [weak server] in
            server?.endSuspension()
            MHD_resume_connection(handle.pointer)
        }
        let streamContext = Unmanaged.passRetained(StreamContext(stream: stream, connection: handle, server: server))
        response = MHD_create_response_from_callback(UInt64.max, 16 << 10, readStream, streamContext.toOpaque(), freeStream)
        if response == nil { streamContext.release() }
    }
    guard let response else { return .NO }
    for field in answer.headers {
        _ = MHD_add_response_header(response, field.name, field.value)
    }
    context.status = answer.status
    if server.observer != nil { context.responseHeaders = answer.headers }
    let result = MHD_queue_response(connection, UInt32(answer.status), response)
    MHD_destroy_response(response)
    return result
}

private func readStream(cls: UnsafeMutableRawPointer?, position: UInt64, buffer: UnsafeMutablePointer<CChar>?, max: Int) -> Int {
    guard let cls, let buffer else { return -2 }
    let context = Unmanaged<StreamContext>.fromOpaque(cls).takeUnretainedValue()
    var suspended = false
    let outcome = context.stream.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: max)) {
        if context.server.admitSuspension() {
            MHD_suspend_connection(context.connection.pointer)
            suspended = true
        }
    }
    switch outcome {
    case .bytes(let count): return count
    case .waiting: return suspended ? 0 : -2  // stopping: end the stream rather than wait
    case .end: return -1  // MHD_CONTENT_READER_END_OF_STREAM
    case .abort: return -2  // MHD_CONTENT_READER_END_WITH_ERROR
    }
}

private func freeStream(cls: UnsafeMutableRawPointer?) {
    guard let cls else { return }
    let context = Unmanaged<StreamContext>.fromOpaque(cls).takeRetainedValue()
    context.stream.connectionClosed()
}

private func requestCompleted(
    cls: UnsafeMutableRawPointer?, connection: OpaquePointer?,
    conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, code: MHD_RequestTerminationCode
) {
    guard let cls, let conCls, let stored = conCls.pointee else { return }
    conCls.pointee = nil
    let context = Unmanaged<RequestContext>.fromOpaque(stored).takeRetainedValue()
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
    if context.handled { server.endExchange() }
    server.observer?(context.head, context.route, context.status, context.responseHeaders, ContinuousClock.now - context.started)
}

private func readHeaders(_ connection: OpaquePointer) -> HTTPHeaders {
    var fields: [(name: String, value: String)] = []
    withUnsafeMutablePointer(to: &fields) { pointer in
        _ = MHD_get_connection_values(connection, .HEADER_KIND, { cls, _, key, value in
            guard let cls, let key else { return .YES }
            let fields = cls.assumingMemoryBound(to: [(name: String, value: String)].self)
            fields.pointee.append((String(cString: key), value.map { String(cString: $0) } ?? ""))
            return .YES
        }, pointer)
    }
    return HTTPHeaders(fields)
}

/// The query arguments, decoded, and about how many bytes they took in the request target
/// (`?`, `&` and `=` counted, runs of empty arguments not).
private func readQuery(_ connection: OpaquePointer) -> (pairs: [(name: String, value: String)], rawBytes: Int) {
    var query: (pairs: [(name: String, value: String)], rawBytes: Int) = ([], 0)
    withUnsafeMutablePointer(to: &query) { pointer in
        _ = MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, { cls, _, key, value in
            guard let cls, let key else { return .YES }
            let query = cls.assumingMemoryBound(to: (pairs: [(name: String, value: String)], rawBytes: Int).self)
            // The unescape callback leaves query arguments raw: decode them here.
            let rawName = String(cString: key)
            let rawValue = value.map { String(cString: $0) }
            query.pointee.rawBytes += 1 + rawName.utf8.count + (rawValue.map { 1 + $0.utf8.count } ?? 0)
            let name = Router.percentDecoded(Substring(rawName), plusIsSpace: true)
            let decoded = rawValue.map { Router.percentDecoded(Substring($0), plusIsSpace: true) } ?? ""
            query.pointee.pairs.append((name, decoded))
            return .YES
        }, pointer)
    }
    return query
}

extension String {
    var trimmingASCIISpaces: String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" || first == "\n" || first == "\r" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" || last == "\n" || last == "\r" { view = view.dropLast() }
        return String(view)
    }
}
