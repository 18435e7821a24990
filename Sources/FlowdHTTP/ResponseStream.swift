import FlowdSync

/// The body of a streaming (chunked) response, written by a producer task while the
/// server sends it.
///
/// The server's reader never spins: with nothing buffered it suspends the connection
/// (under this stream's lock), and the next `write` or `finish` resumes it. A stream
/// whose client has gone reports `isClosed`, and later writes are dropped.
public final class ResponseStream: Sendable {
    /// Writes beyond this many unsent bytes end the stream: the client is not reading.
    public static let maxBufferedBytes = 16 << 20

    enum ReadResult {
        case bytes(Int)
        case waiting
        case end
        case abort
    }

    private struct State {
        var buffer: [UInt8] = []
        var offset = 0
        var finished = false
        var closed = false
        var overflowed = false
        var suspended = false
        var reads = 0
        var wake: (@Sendable () -> Void)?
        var closeHandlers: [@Sendable () -> Void] = []
    }

    private let state = Locked(State())

    public init() {}

    /// Queues bytes for the client. Returns false when the client is gone (nothing is queued).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        let (accepted, wake): (Bool, (@Sendable () -> Void)?) = state.withLock { s in
            guard !s.closed, !s.finished, !s.overflowed else { return (false, nil) }
            if s.buffer.count - s.offset + bytes.count > ResponseStream.maxBufferedBytes {
                s.overflowed = true
            } else {
                s.buffer.append(contentsOf: bytes)
            }
            return (!s.overflowed, ResponseStream.takeWake(&s))
        }
        wake?()
        return accepted
    }

    @discardableResult
    public func write(_ text: String) -> Bool { write(Array(text.utf8)) }

    /// Ends the stream once everything written has been sent. Idempotent.
    public func finish() {
        let wake = state.withLock { s -> (@Sendable () -> Void)? in
            s.finished = true
            return ResponseStream.takeWake(&s)
        }
        wake?()
    }

    /// Bytes written and not yet handed to the connection: how far behind the client is.
    public var unsentBytes: Int { state.withLock { $0.buffer.count - $0.offset } }

    /// True once the connection is gone (the client hung up, or the response was sent or dropped).
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Runs `handler` once when the connection is gone (at once if it already is).
    public func onClose(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.closed { return true }
            s.closeHandlers.append(handler)
            return false
        }
        if runNow { handler() }
    }

    // MARK: - The server's side

    /// Installs how to resume the connection after `read` suspended it.
    func attach(wake: @escaping @Sendable () -> Void) {
        state.withLock { $0.wake = wake }
    }

    /// Copies buffered bytes into `destination`. With nothing to send it calls `suspend`
    /// while holding the lock, so a producer's resume can never come before the suspend.
    func read(into destination: UnsafeMutableRawBufferPointer, suspend: () -> Void) -> ReadResult {
        state.withLock { s in
            s.reads += 1
            if s.overflowed { return .abort }
            let available = s.buffer.count - s.offset
            if available > 0 {
                let count = min(available, destination.count)
                s.buffer.withUnsafeBytes { source in
                    destination.baseAddress!.copyMemory(from: source.baseAddress! + s.offset, byteCount: count)
                }
                s.offset += count
                if s.offset == s.buffer.count {
                    s.buffer.removeAll(keepingCapacity: s.buffer.capacity <= 64 << 10)
                    s.offset = 0
                } else if s.offset > 1 << 20 {
                    s.buffer.removeFirst(s.offset)
                    s.offset = 0
                }
                return .bytes(count)
            }
            if s.finished { return .end }
            s.suspended = true
            suspend()
            return .waiting
        }
    }

    /// How often the server's reader has asked for bytes (a spinning reader asks thousands of times).
    var readCalls: Int { state.withLock { $0.reads } }

    /// The server dropped the response: the client is gone or everything was sent.
    func connectionClosed() {
        let handlers = state.withLock { s -> [@Sendable () -> Void] in
            s.closed = true
            s.buffer = []
            s.wake = nil
            defer { s.closeHandlers = [] }
            return s.closeHandlers
        }
        for handler in handlers { handler() }
    }

    private static func takeWake(_ s: inout State) -> (@Sendable () -> Void)? {
        guard s.suspended else { return nil }
        s.suspended = false
        return s.wake
    }
}
