import FlowdHTTP
import FlowdJSON
import Foundation
import Stores
import Synchronization
import FlowdSync

/// The SSE wire form of run events: `id:`, `event:`, one `data:` line, a blank line; LF only.
enum ServerSentEvents {
    static func encode(_ event: RunEvent, into out: inout [UInt8]) {
        out.append(contentsOf: "id: ".utf8)
        out.append(contentsOf: String(event.id).utf8)
        out.append(contentsOf: "\nevent: ".utf8)
        out.append(contentsOf: event.name.utf8)
        out.append(contentsOf: "\ndata: ".utf8)
        event.appendData(to: &out)
        out.append(contentsOf: [10, 10])
    }

    /// `event: token` with `{"run_id","agent","text"}` and no `id:` line: a piece of an llm
    /// agent's output, neither stored nor numbered.
    static func encodeToken(runID: String, agent: String, text: String, into out: inout [UInt8]) {
        out.append(contentsOf: "event: token\ndata: {\"run_id\":".utf8)
        JSONValue.appendString(runID, to: &out)
        out.append(contentsOf: #","agent":"#.utf8)
        JSONValue.appendString(agent, to: &out)
        out.append(contentsOf: #","text":"#.utf8)
        JSONValue.appendString(text, to: &out)
        out.append(contentsOf: "}\n\n".utf8)
    }

    static func encode(_ events: some Sequence<RunEvent>) -> [UInt8] {
        var out: [UInt8] = []
        for event in events { encode(event, into: &out) }
        return out
    }

    static let headers = HTTPHeaders([
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    ])

    /// True when the client asked for an event stream: `Accept` names `text/event-stream`
    /// with a quality above 0 and at least that of JSON (RFC 9110 §12.5.1: each type takes
    /// the quality of the most specific range that matches it). Without that, JSON.
    static func wanted(by request: HTTPRequest) -> Bool {
        guard let accept = request.headers["Accept"], accept.utf8.count >= 17 else { return false }
        var stream: (specificity: Int, quality: Double)?
        var json: (specificity: Int, quality: Double)?
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";")
            guard let type = parts.first?.trimmingCharacters(in: .whitespaces).lowercased() else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if pair.count == 2, pair[0].lowercased() == "q" { quality = Double(pair[1]) ?? 0 }
            }
            if type == "text/event-stream", (stream?.specificity ?? -1) < 2 { stream = (2, quality) }
            let forJSON = type == "application/json" ? 2 : type == "application/*" ? 1 : type == "*/*" ? 0 : -1
            if forJSON > (json?.specificity ?? -1) { json = (forJSON, quality) }
        }
        guard let stream, stream.quality > 0 else { return false }
        return stream.quality >= (json?.quality ?? 0)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
