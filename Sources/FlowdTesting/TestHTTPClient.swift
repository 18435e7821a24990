import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct TestClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One TCP connection to 127.0.0.1 with blocking I/O. Use it through `TestHTTPClient`
/// (or inside `TestHTTPClient.blocking`), never directly on the cooperative pool:
/// the server under test needs those threads.
public final class TestConnection: @unchecked Sendable {
    public private(set) var fd: Int32
    private var pending: [UInt8] = []

    public init(port: Int, timeoutSeconds: Int = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestClientError("socket: \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            // Closed here and marked: deinit runs for an initializer that throws this late,
            // and a second close could hit a descriptor another thread has opened meanwhile.
            close(fd)
            fd = -1
            throw TestClientError("connect to port \(port): errno \(error)")
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw TestClientError("send: errno \(errno)") }
            offset += written
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads more bytes; an empty array means the peer closed the connection.
    public func receiveSome() throws -> [UInt8] {
        if !pending.isEmpty { defer { pending = [] }; return pending }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw TestClientError("recv: errno \(errno)") }
        return Array(buffer[0..<count])
    }

    /// True when the server has closed this connection (reads EOF within `seconds`).
    public func isClosedByPeer(within seconds: Int) -> Bool {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// Everything the peer sends until it closes the connection, or until `seconds` pass
    /// without a byte; `closed` tells which of the two ended it.
    public func receiveAll(idleSeconds seconds: Int) throws -> (bytes: [UInt8], closed: Bool) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var data = pending
        pending = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (data, true) }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return (data, false) }
                if errno == ECONNRESET { return (data, true) }
                throw TestClientError("recv: errno \(errno)")
            }
            data.append(contentsOf: buffer[0..<count])
        }
    }

    /// Whether the peer has not closed the connection, checked now without waiting (data
    /// already waiting counts as open).
    public var isOpen: Bool {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count > 0 || (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    }

    /// Appends what the socket has to `data`; false when the peer closed it.
    private func receive(into data: inout [UInt8]) throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 { throw TestClientError("recv: errno \(errno) (timeout?)") }
        if count == 0 { return false }
        data.append(contentsOf: buffer[0..<count])
        return true
    }

    /// Reads one whole response (Content-Length, chunked, or until close).
    public func readResponse(headOnly: Bool = false) throws -> TestResponse {
        var data = pending
        pending = []
        func fill() throws -> Bool { try receive(into: &data) }
        var headEnd: Int?
        while headEnd == nil {
            headEnd = TestConnection.find([13, 10, 13, 10], in: data)
            if headEnd == nil, try !fill() { throw TestClientError("connection closed before a response head") }
        }
        let head = String(decoding: data[0..<headEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw TestClientError("bad status line: \(head)") }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var rest = Array(data[(headEnd! + 4)...])
        let header = { (name: String) in headers.first { $0.name.lowercased() == name }?.value }
        var body: [UInt8] = []
        if headOnly || status == 204 || status == 304 || (100..<200).contains(status) {
            pending = rest
        } else if header("transfer-encoding")?.lowercased() == "chunked" {
            data = rest
            while true {
                guard let lineEnd = TestConnection.find([13, 10], in: data) else {
                    if try !fill() { throw TestClientError("closed inside a chunk size") }
                    continue
                }
                let sizeText = String(decoding: data[0..<lineEnd], as: UTF8.self).split(separator: ";")[0]
                guard let size = Int(sizeText, radix: 16) else { throw TestClientError("bad chunk size \(sizeText)") }
                while data.count < lineEnd + 2 + size + 2 {
                    if try !fill() { throw TestClientError("closed inside a chunk") }
                }
                if size == 0 {
                    // Skip trailers up to the final empty line.
                    while TestConnection.find([13, 10], in: Array(data[(lineEnd + 2)...])) == nil {
                        if try !fill() { break }
                    }
                    pending = Array(data[min(data.count, lineEnd + 4)...])
                    break
                }
                body.append(contentsOf: data[(lineEnd + 2)..<(lineEnd + 2 + size)])
                data = Array(data[(lineEnd + 2 + size + 2)...])
            }
        } else if let lengthText = header("content-length"), let length = Int(lengthText) {
            data = rest
            while data.count < length {
                if try !fill() { throw TestClientError("closed inside a body") }
            }
            body = Array(data[0..<length])
            pending = Array(data[length...])
        } else {
            data = rest
            while try fill() {}
            body = data
            rest = []
        }
        return TestResponse(status: status, headers: headers, body: body)
    }

    /// Reads a response head only; the body is then read with `readChunk()`.
    public func readHead() throws -> TestResponse {
        try readResponse(headOnly: true)
    }

    /// Reads exactly `length` body bytes (after `readHead()` of a response with a Content-Length).
    public func readBody(length: Int) throws -> [UInt8] {
        var data = pending
        pending = []
        while data.count < length {
            guard try receive(into: &data) else { throw TestClientError("closed inside a body") }
        }
        pending = Array(data[length...])
        return Array(data[0..<length])
    }

    /// The next chunk of a chunked body, decoded; nil at the final chunk or when closed.
    public func readChunk() throws -> [UInt8]? {
        var data = pending
        pending = []
        func fill() throws -> Bool { try receive(into: &data) }
        while true {
            if let lineEnd = TestConnection.find([13, 10], in: data) {
                let sizeText = String(decoding: data[0..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText, radix: 16) else { throw TestClientError("bad chunk size '\(sizeText)'") }
                if size == 0 {
                    pending = Array(data[(lineEnd + 2)...])
                    return nil
                }
                if data.count >= lineEnd + 2 + size + 2 {
                    let chunk = Array(data[(lineEnd + 2)..<(lineEnd + 2 + size)])
                    pending = Array(data[(lineEnd + 2 + size + 2)...])
                    return chunk
                }
            }
            if try !fill() {
                pending = data
                return nil
            }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }
}

/// An HTTP/1.1 client for tests (the harness's `.live` mode): each call opens a connection
/// on a thread of its own, so tests never block the cooperative pool the server under test
/// runs on.
public struct TestHTTPClient: TestClient {
    public let port: Int
    public var headers: [(String, String)] = []
    /// How long a read may wait for the server's next bytes before the request fails.
    public var timeoutSeconds = 30

    public init(port: Int) { self.port = port }

    /// Runs blocking work on a new thread and awaits its result.
    public static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    public func execute(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) async throws -> TestResponse {
        let port = self.port
        let all = self.headers + headers
        let timeout = timeoutSeconds
        return try await TestHTTPClient.blocking {
            let connection = try TestConnection(port: port, timeoutSeconds: timeout)
            try connection.send(TestHTTPClient.encode(method, path, headers: all, body: body))
            return try connection.readResponse(headOnly: method == "HEAD")
        }
    }

    public static func encode(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }
}
