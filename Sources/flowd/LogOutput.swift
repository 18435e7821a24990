import Foundation
import Logging
import Stores
import FlowdSync

/// Log lines on stderr, buffered: handlers append whole lines under a lock, and a thread
/// writes what has gathered every 50 ms (or sooner past 64 KiB) with one `write(2)`, so a
/// line per request costs no system call. Lines never interleave; at most the last 50 ms
/// of lines can be lost if the process is killed.
final class LogOutput: Sendable {
    static let shared = LogOutput()

    private let buffer = Locked<[UInt8]>([])
    private let wake = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in
            while true {
                _ = wake.wait(timeout: .now() + .milliseconds(50))
                flush()
            }
        }
        thread.name = "flowd-log"
        thread.start()
    }

    func append(_ line: [UInt8]) {
        let large = buffer.withLock { pending -> Bool in
            pending.append(contentsOf: line)
            return pending.count > 64 << 10
        }
        if large { wake.signal() }
    }

    /// Writes everything appended so far (also called at exit).
    func flush() {
        let bytes = buffer.withLock { pending -> [UInt8] in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }
}

/// `2026-11-25T12:00:00.123Z info flowd: message key=value …` or, with `json`, one JSON
/// object per line: `{"timestamp","level","label","message", …metadata}`.
struct FlowdLogHandler: LogHandler {
    let label: String
    let json: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra, uniquingKeysWith: { $1 }) }
        let keys = fields.keys.sorted()
        var line: [UInt8]
        if json {
            var object: JSONObject = [
                "timestamp": .string(ISOTime.string(Date())),
                "level": .string(event.level.rawValue),
                "label": .string(label),
                "message": .string("\(event.message)"),
            ]
            for key in keys { object[key] = .string("\(fields[key]!)") }
            line = JSONValue.object(object).serialized()
        } else {
            var text = "\(ISOTime.string(Date())) \(event.level.rawValue) \(label): \(event.message)"
            for key in keys { text += " \(key)=\(fields[key]!)" }
            line = Array(text.utf8)
        }
        line.append(10)
        LogOutput.shared.append(line)
    }
}
