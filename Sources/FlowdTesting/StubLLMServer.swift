import FlowdSync
import Foundation
import FlowdJSON
#if canImport(Glibc)
import Glibc
#endif

/// A tiny OpenAI-compatible chat-completions server on loopback, for tests of `llm` agents
/// run by a `flowd` child process (`environment` gives the variables that point it here).
///
/// Each connection is served on its own thread: read one request, answer it with `respond`,
/// close. Every request is recorded, numbered from 1 in arrival order, so a test can count
/// the calls a flow paid for (`calls(model:)`) and answer the first call of an agent
/// differently from the later ones (`Request.index`, or its own count per model).
///
/// (`Tests/AgentsTests` keeps a copy of its own: that target does not depend on FlowdTesting.)
public final class StubLLMServer: @unchecked Sendable {
    // @unchecked: `port`, `socket` and `respond` are set once in `init`; the rest is in `state`.

    /// One request as the stub read it.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        /// Header names in lower case.
        public var headers: [String: String]
        public var body: Data
        /// 1 for the first request the stub received, 2 for the next, …
        public var index: Int

        /// The body parsed as JSON, or nil.
        public var json: JSONValue? { try? JSONValue.parse(body) }
        /// The `model` the request names.
        public var model: String? { json?["model"]?.stringValue }
        /// Whether the client asked for a streamed completion (`"stream": true`).
        public var wantsStream: Bool { json?["stream"] == true }
        /// The content of the last `user` message: an agent's rendered prompt.
        public var prompt: String? {
            let messages = json?["messages"]?.arrayValue ?? []
            return messages.last { $0["role"] == "user" }?["content"]?.stringValue
        }
    }

    /// What the stub answers.
    public struct Reply: Sendable {
        public var status: Int
        public var body: String
        public var contentType: String
        /// Waited before answering (on the connection's own thread).
        public var delay: Duration
        /// When set, the body goes out in these parts (`Transfer-Encoding: chunked`), one
        /// every `partDelay`, as a provider streams: `body` is then their concatenation.
        public var parts: [String]?
        public var partDelay: Duration = .zero
        /// Called (on the connection's thread) once every part but the last went out; the
        /// last waits for it to return, so a test can look at the client mid-stream.
        public var beforeLastPart: (@Sendable () -> Void)?

        public init(status: Int = 200, body: String, contentType: String = "application/json", delay: Duration = .zero) {
            self.status = status
            self.body = body
            self.contentType = contentType
            self.delay = delay
        }

        /// A plain JSON chat completion whose message is `content` (a provider asked to stream
        /// may answer this too: flowd accepts it), with `usage` when both counts are given.
        public static func completion(_ content: String, promptTokens: Int? = nil, completionTokens: Int? = nil,
                                      delay: Duration = .zero) -> Reply {
            Reply(body: StubLLMServer.completion(content, promptTokens: promptTokens, completionTokens: completionTokens),
                  delay: delay)
        }

        /// A streamed completion (`text/event-stream`): one `chat.completion.chunk` per piece,
        /// a last chunk with `usage` when both counts are given, then `data: [DONE]`.
        ///
        /// With `pieceDelay`, each chunk is its own write, one every `pieceDelay`, so the
        /// client reads the pieces as they come.
        public static func streamed(_ pieces: [String], promptTokens: Int? = nil, completionTokens: Int? = nil,
                                    delay: Duration = .zero, pieceDelay: Duration? = nil) -> Reply {
            var parts: [String] = []
            // Keys in sorted order: the same bytes as when the stub sorted them with Foundation.
            func chunk(_ object: JSONValue) {
                parts.append("data: " + object.jsonString + "\n\n")
            }
            for piece in pieces {
                chunk(["choices": [["delta": ["content": .string(piece)], "finish_reason": nil, "index": 0]],
                       "id": "stub", "object": "chat.completion.chunk"])
            }
            chunk(["choices": [["delta": [:], "finish_reason": "stop", "index": 0]],
                   "id": "stub", "object": "chat.completion.chunk"])
            if let promptTokens, let completionTokens {
                chunk(["choices": [], "id": "stub", "object": "chat.completion.chunk",
                       "usage": StubLLMServer.usage(promptTokens, completionTokens)])
            }
            parts.append("data: [DONE]\n\n")
            var reply = Reply(body: parts.joined(), contentType: "text/event-stream", delay: delay)
            if let pieceDelay {
                reply.parts = parts
                reply.partDelay = pieceDelay
            }
            return reply
        }

        /// An error answer, `{"error": {"message": …}}`, as providers give.
        public static func failure(status: Int = 500, _ message: String = "model overloaded") -> Reply {
            let body: JSONValue = ["error": ["message": .string(message), "type": "server_error"]]
            return Reply(status: status, body: body.jsonString)
        }
    }

    public let port: Int
    private let socket: Int32
    /// The requests so far and the tests waiting for a number of them.
    private struct State {
        var recorded: [Request] = []
        var waiters: [UInt64: (count: Int, continuation: CheckedContinuation<Void, Never>)] = [:]
        var cancelled: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
    }

    private let state = Locked(State())
    private let respond: @Sendable (Request) -> Reply

    /// Listens on a free port of 127.0.0.1 and answers each request with `respond`.
    public init(respond: @escaping @Sendable (Request) -> Reply) throws {
        self.respond = respond
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestClientError("stub LLM: socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw TestClientError("stub LLM: bind/listen: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        socket = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Answers every request with a completion whose message is `content`.
    public convenience init(answering content: String) throws {
        try self.init { _ in .completion(content) }
    }

    /// The base URL for `FLOWD_LLM_BASE_URL` (flowd appends `/chat/completions`).
    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    /// The environment of a `flowd` child process whose llm agents call this stub.
    public var environment: [String: String] {
        ["FLOWD_LLM_BASE_URL": baseURL, "FLOWD_LLM_API_KEY": "stub-key", "FLOWD_LLM_MODEL": "stub-model"]
    }

    /// Every request so far, in arrival order.
    public var requests: [Request] { state.withLock { $0.recorded } }

    /// How many requests the stub received.
    public var callCount: Int { state.withLock { $0.recorded.count } }

    /// How many requests named `model`.
    public func calls(model: String) -> Int { state.withLock { $0.recorded.filter { $0.model == model }.count } }

    /// Returns once the stub has received `count` requests in all (at once if it has), so a
    /// test awaits "the agent has called its model" instead of sleeping; throws after `timeout`.
    public func waitForRequests(_ count: Int = 1, timeout: Duration = scaled(.seconds(30))) async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.arrival(of: count, id: id) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestClientError("stub LLM: \(count) requests did not arrive in \(timeout) (got \(self.callCount))")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func arrival(of count: Int, id: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.recorded.count >= count || s.cancelled.remove(id) != nil { return true }
                    s.waiters[id] = (count, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            // Before the waiter is stored, the mark makes the registration return at once.
            let waiter = state.withLock { s in
                s.waiters.removeValue(forKey: id) ?? { s.cancelled.insert(id); return nil }()
            }
            waiter?.continuation.resume()
        }
    }

    /// Stops accepting connections (requests already read are still answered).
    public func stop() {
        shutdown(socket, Int32(SHUT_RDWR))
        close(socket)
    }

    /// A plain JSON chat completion whose message is `content`.
    public static func completion(_ content: String, promptTokens: Int? = nil, completionTokens: Int? = nil) -> String {
        var object: JSONObject = [
            "choices": [["finish_reason": "stop", "index": 0, "message": ["content": .string(content), "role": "assistant"]]],
            "id": "stub", "model": "stub-model", "object": "chat.completion",
        ]
        if let promptTokens, let completionTokens {
            object["usage"] = usage(promptTokens, completionTokens)
        }
        return JSONValue.object(object).jsonString
    }

    static func usage(_ prompt: Int, _ completion: Int) -> JSONValue {
        ["completion_tokens": .int(Int64(completion)), "prompt_tokens": .int(Int64(prompt)),
         "total_tokens": .int(Int64(prompt + completion))]
    }

    private func acceptLoop() {
        while true {
            let client = accept(socket, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            Thread { [self] in serve(client) }.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Range<Data.Index>?
        while headerEnd == nil {
            let count = recv(client, &chunk, chunk.count, 0)
            if count <= 0 { return }
            buffer.append(contentsOf: chunk[0..<count])
            headerEnd = buffer.range(of: Data("\r\n\r\n".utf8))
        }
        let head = String(decoding: buffer[..<headerEnd!.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = head[0].split(separator: " ")
        guard requestLine.count >= 2 else { return }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(buffer[headerEnd!.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            guard let decoded = StubLLMServer.readChunked(client, &body) else { return }
            body = decoded
        } else {
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while body.count < length {
                let count = recv(client, &chunk, chunk.count, 0)
                if count <= 0 { return }
                body.append(contentsOf: chunk[0..<count])
            }
        }
        let (request, arrived) = state.withLock { s -> (Request, [CheckedContinuation<Void, Never>]) in
            let request = Request(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers,
                                  body: body, index: s.recorded.count + 1)
            s.recorded.append(request)
            let due = s.waiters.filter { $0.value.count <= s.recorded.count }
            for id in due.keys { s.waiters[id] = nil }
            return (request, due.values.map(\.continuation))
        }
        for waiter in arrived { waiter.resume() }
        let reply = respond(request)
        if reply.delay > .zero {
            let (seconds, attoseconds) = reply.delay.components
            Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
        }
        if let parts = reply.parts {
            sendParts(client, reply, parts)
            return
        }
        let payload = Array(reply.body.utf8)
        let response = "HTTP/1.1 \(reply.status) Stub\r\nContent-Type: \(reply.contentType)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(response.utf8) + payload
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Sends `parts` as the chunks of a chunked body, waiting `reply.partDelay` before each;
    /// stops when the client is gone.
    private func sendParts(_ client: Int32, _ reply: Reply, _ parts: [String]) {
        func send(_ text: String) -> Bool {
            let bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }
        let head = "HTTP/1.1 \(reply.status) Stub\r\nContent-Type: \(reply.contentType)\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        guard send(head) else { return }
        let (seconds, attoseconds) = reply.partDelay.components
        let pause = Double(seconds) + Double(attoseconds) / 1e18
        for (index, part) in parts.enumerated() where !part.isEmpty {
            if pause > 0 { Thread.sleep(forTimeInterval: pause) }
            if index == parts.count - 1 { reply.beforeLastPart?() }
            guard send(String(part.utf8.count, radix: 16) + "\r\n" + part + "\r\n") else { return }
        }
        _ = send("0\r\n\r\n")
    }

    /// Reads a chunked body whose first bytes are in `data`; nil when the peer closed early.
    private static func readChunked(_ client: Int32, _ data: inout Data) -> Data? {
        var body = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let count = recv(client, &chunk, chunk.count, 0)
            if count <= 0 { return false }
            data.append(contentsOf: chunk[0..<count])
            return true
        }
        let crlf = Data("\r\n".utf8)
        while true {
            guard let lineEnd = data.range(of: crlf) else {
                if !fill() { return nil }
                continue
            }
            let sizeText = String(decoding: data[data.startIndex..<lineEnd.lowerBound], as: UTF8.self)
                .split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            let start = lineEnd.upperBound
            while data.distance(from: start, to: data.endIndex) < size + 2 {
                if !fill() { return nil }
            }
            if size == 0 { return body }
            body.append(data[start..<data.index(start, offsetBy: size)])
            data = Data(data[data.index(start, offsetBy: size + 2)...])
        }
    }
}
