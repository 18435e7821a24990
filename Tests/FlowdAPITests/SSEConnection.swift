import FlowdJSON
import FlowdSync
import FlowdTesting
import Foundation
import Stores
#if canImport(Glibc)
import Glibc
#endif

/// A server-sent event stream read as a browser would, through `SSEParser` (the WHATWG
/// algorithm). `Tests/clients/test_sse.py` reads the same streams with sseclient-py.
final class SSEConnection: @unchecked Sendable {
    let connection: TestConnection
    let head: TestResponse
    private let parser = SSEParser()
    private let rawText = LockedText()
    private let bodyRead = LockedText()

    /// Everything received so far, comments included.
    var raw: String { rawText.value }

    private init(connection: TestConnection, head: TestResponse) {
        self.connection = connection
        self.head = head
    }

    static func open(port: Int, _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) async throws -> SSEConnection {
        try await TestHTTPClient.blocking {
            let connection = try TestConnection(port: port)
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
            try connection.send(head + "\r\n" + (body ?? ""))
            return SSEConnection(connection: connection, head: try connection.readHead())
        }
    }

    /// The next event, or nil once the stream has ended.
    func next() async throws -> SSEEvent? {
        while true {
            if let event = parser.nextEvent() { return event }
            let connection = self.connection
            let chunk: [UInt8]
            if let length = head.header("Content-Length").flatMap(Int.init) {
                // A whole body (a finished run's replay): read it once.
                guard bodyRead.value.isEmpty else { return nil }
                bodyRead.append("read")
                chunk = try await TestHTTPClient.blocking { try connection.readBody(length: length) }
            } else {
                guard let next = try await TestHTTPClient.blocking({ try connection.readChunk() }) else { return nil }
                chunk = next
            }
            rawText.append(String(decoding: chunk, as: UTF8.self))
            for byte in chunk { parser.consume(byte) }
        }
    }

    /// Every event up to the end of the stream.
    func all() async throws -> [SSEEvent] {
        var events: [SSEEvent] = []
        while let event = try await next() { events.append(event) }
        return events
    }

    /// Hangs up, as a client that goes away.
    func close() { shutdown(connection.fd, Int32(SHUT_RDWR)) }
}

/// Text appended by one task and read by another.
final class LockedText: Sendable {
    private let text = Locked("")
    func append(_ more: String) { text.withLock { $0 += more } }
    var value: String { text.withLock { $0 } }
}

/// One dispatched event: `event` is "message" when the stream named none.
struct SSEEvent: Equatable {
    var id: String?
    var event: String?
    var data: String

    /// The data parsed as JSON (an empty object when it is not).
    var json: JSONValue {
        (try? JSONValue.parse(data)) ?? [:]
    }
}

/// The event-stream interpretation of the HTML standard (§9.2.6): lines end with CRLF, LF
/// or CR; comments are skipped; `data` lines join with LF; an empty line dispatches.
final class SSEParser: @unchecked Sendable {
    private var line: [UInt8] = []
    private var sawCR = false
    private var eventType = ""
    private var data = ""
    private var lastEventID: String?
    private var queue: [SSEEvent] = []

    func consume(_ byte: UInt8) {
        if byte == 10, sawCR { sawCR = false; return }
        sawCR = byte == 13
        if byte == 10 || byte == 13 {
            process(String(decoding: line, as: UTF8.self))
            line.removeAll(keepingCapacity: true)
        } else {
            line.append(byte)
        }
    }

    func nextEvent() -> SSEEvent? { queue.isEmpty ? nil : queue.removeFirst() }

    private func process(_ line: String) {
        if line.isEmpty {
            defer { eventType = ""; data = "" }
            guard !data.isEmpty else { return }
            if data.hasSuffix("\n") { data.removeLast() }
            queue.append(SSEEvent(id: lastEventID, event: eventType.isEmpty ? "message" : eventType, data: data))
            return
        }
        if line.hasPrefix(":") { return }
        var field = Substring(line)
        var value = Substring("")
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            value = line[line.index(after: colon)...]
            if value.hasPrefix(" ") { value = value.dropFirst() }
        }
        switch field {
        case "event": eventType = String(value)
        case "data": data += value + "\n"
        case "id" where !value.contains("\0"): lastEventID = String(value)
        default: break
        }
    }
}
