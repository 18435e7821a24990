import FlowdJSON
import Foundation
import Logging
import Stores

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
