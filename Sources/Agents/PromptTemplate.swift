/// A prompt parsed once, at load time, into literal text and placeholders.
///
/// Rendering only concatenates: no scanning per run. Placeholders are
/// `{{input}}`, `{{story_id}}`, `{{docs.<id>}}`, `{{outputs.<agent>}}` and
/// `{{memory.last_output}}`; spaces inside the braces are allowed.
public struct PromptTemplate: Sendable {
    enum Segment: Sendable, Equatable {
        case text(String)
        case input
        case storyID
        case document(String)
        case output(String)
        case lastOutput
    }

    let segments: [Segment]

    /// Document ids named by `{{docs.<id>}}`, in order, each once.
    public var documentIDs: [String] {
        unique(segments.compactMap { if case let .document(id) = $0 { id } else { nil } })
    }

    /// Agent ids named by `{{outputs.<agent>}}`, in order, each once.
    public var outputAgents: [String] {
        unique(segments.compactMap { if case let .output(id) = $0 { id } else { nil } })
    }

    /// Parses `source`; the errors list every bad placeholder.
    static func parse(_ source: String) throws(ParseError) -> PromptTemplate {
        var segments: [Segment] = []
        var errors: [String] = []
        var rest = source[...]
        while let open = rest.firstRange(of: "{{") {
            if open.lowerBound > rest.startIndex {
                segments.append(.text(String(rest[..<open.lowerBound])))
            }
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else {
                errors.append("unclosed placeholder '\(rest[open.lowerBound...].prefix(30))'")
                rest = rest[rest.endIndex...]
                break
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingSpaces
            if let segment = placeholder(name) {
                segments.append(segment)
            } else {
                errors.append("unknown placeholder '{{\(name)}}'")
            }
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { segments.append(.text(String(rest))) }
        guard errors.isEmpty else { throw ParseError(messages: errors) }
        return PromptTemplate(segments: merged(segments))
    }

    /// Every bad placeholder of a prompt.
    struct ParseError: Error {
        var messages: [String]
    }

    private static func placeholder(_ name: Substring) -> Segment? {
        switch name {
        case "input": return .input
        case "story_id": return .storyID
        case "memory.last_output": return .lastOutput
        default:
            if name.hasPrefix("docs.") {
                let id = String(name.dropFirst(5))
                return Identifiers.isDocumentID(id) ? .document(id) : nil
            }
            if name.hasPrefix("outputs.") {
                let id = String(name.dropFirst(8))
                return Identifiers.isAgentID(id) ? .output(id) : nil
            }
            return nil
        }
    }

    private static func merged(_ segments: [Segment]) -> [Segment] {
        var result: [Segment] = []
        for segment in segments {
            if case let .text(next) = segment, case let .text(previous)? = result.last {
                result[result.count - 1] = .text(previous + next)
            } else {
                result.append(segment)
            }
        }
        return result
    }

    /// Why a prompt could not be rendered in this run.
    enum RenderError: Error {
        case outputNotYetProduced(String)
        case documentMissing(String)
    }

    func render(
        input: FlowInput, outputs: [String: String], lastOutput: String?
    ) throws(RenderError) -> String {
        var text = ""
        for segment in segments {
            switch segment {
            case let .text(literal): text += literal
            case .input: text += input.input
            case .storyID: text += input.storyID
            case .lastOutput: text += lastOutput ?? ""
            case let .document(id):
                guard let document = input.documents[id] else { throw .documentMissing(id) }
                text += document
            case let .output(agent):
                guard let output = outputs[agent] else { throw .outputNotYetProduced(agent) }
                text += output
            }
        }
        return text
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }
}

func unique(_ values: [String]) -> [String] {
    var seen = Set<String>()
    return values.filter { seen.insert($0).inserted }
}
