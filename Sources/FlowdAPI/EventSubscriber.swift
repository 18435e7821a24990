import FlowdHTTP
import Foundation
import Stores
import Synchronization
import FlowdSync

/// One client following a run: its response stream, and a heartbeat comment whenever
/// nothing else went out for `heartbeat`. Ends with the run's terminal event.
///
/// With `tokens`, it gets the run's `token` events too, never at the agent's cost: while the
/// client has `tokenWindow` bytes or more unsent, tokens wait here instead, coalesced into
/// one piece per agent of at most `maxHeldTokenBytes` (pieces beyond are dropped); the piece
/// held goes out before the next event, numbered or not. Numbered events are never held
/// or dropped (only `ResponseStream`'s own bound ends a stream that is not read at all).
final class EventSubscriber: Sendable {
    let stream = ResponseStream()
    /// Whether the client asked for `token` events (`tokens=true`).
    let tokens: Bool
    private let lastWrite = Atomic<Int64>(0)
    private let heartbeatTask = Locked<Task<Void, Never>?>(nil)
    /// Tokens held while the client is behind: consecutive pieces of one agent, joined.
    private let heldToken = Locked<(runID: String, agent: String, text: String)?>(nil)

    /// Unsent bytes past which tokens are held rather than written.
    static let tokenWindow = 64 << 10
    /// The most text a held token keeps; later pieces are dropped until it goes out.
    static let maxHeldTokenBytes = 64 << 10

    init(heartbeat: Duration, tokens: Bool = false) {
        self.tokens = tokens
        lastWrite.store(EventSubscriber.now(), ordering: .relaxed)
        let task = Task { [weak self, stream] in
            let interval = heartbeat.nanoseconds
            while !Task.isCancelled {
                let since = EventSubscriber.now() - (self?.lastWrite.load(ordering: .relaxed) ?? 0)
                let wait = max(interval - since, interval / 10)
                try? await Task.sleep(for: .nanoseconds(wait))
                guard let self, !stream.isClosed else { return }
                if EventSubscriber.now() - self.lastWrite.load(ordering: .relaxed) >= interval {
                    // No blank line after it: a blank line would dispatch an empty event in some clients
                    // (httpx-sse), and the SSE grammar needs none after a comment.
                    self.write(Array(": ping\n".utf8))
                }
            }
        }
        heartbeatTask.withLock { $0 = task }
        stream.onClose { task.cancel() }
    }

    var response: HTTPResponse {
        HTTPResponse(status: HTTPStatus.ok, headers: ServerSentEvents.headers, body: .stream(stream))
    }

    func write(_ bytes: [UInt8]) {
        lastWrite.store(EventSubscriber.now(), ordering: .relaxed)
        stream.write(bytes)
    }

    func send(_ event: RunEvent) {
        var out: [UInt8] = []
        ServerSentEvents.encode(event, into: &out)
        send(encoded: out)
    }

    /// Sends an event already encoded (`ServerSentEvents.encode`): a run encodes each event
    /// once for all its followers.
    func send(encoded: [UInt8]) {
        guard tokens, let held = heldToken.withLock({ $0.take() }) else {
            write(encoded)
            return
        }
        var out: [UInt8] = []
        ServerSentEvents.encodeToken(runID: held.runID, agent: held.agent, text: held.text, into: &out)
        out.append(contentsOf: encoded)
        write(out)
    }

    /// Sends a piece of `agent`'s output (`encoded`: its `token` event), or holds it while
    /// the client is behind. Never waits, and holds at most `maxHeldTokenBytes` of text.
    func sendToken(runID: String, agent: String, text: String, encoded: [UInt8]) {
        let behind = stream.unsentBytes >= EventSubscriber.tokenWindow
        let out = heldToken.withLock { held -> [UInt8]? in
            if behind {
                if held != nil {
                    // Appended in place: the held text is never copied.
                    if held!.agent == agent && held!.text.utf8.count + text.utf8.count <= EventSubscriber.maxHeldTokenBytes {
                        held!.text += text
                    }
                } else if text.utf8.count <= EventSubscriber.maxHeldTokenBytes {
                    held = (runID, agent, text)
                }
                return nil
            }
            guard let piece = held.take() else { return encoded }
            var out: [UInt8] = []
            if piece.agent == agent {
                ServerSentEvents.encodeToken(runID: runID, agent: agent, text: piece.text + text, into: &out)
            } else {
                ServerSentEvents.encodeToken(runID: piece.runID, agent: piece.agent, text: piece.text, into: &out)
                out += encoded
            }
            return out
        }
        if let out { write(out) }
    }

    /// After the terminal event: the stream ends and the heartbeat stops.
    func finish() {
        heartbeatTask.withLock { $0?.cancel() }
        stream.finish()
    }

    private static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
