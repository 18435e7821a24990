import Foundation

/// `{match, action}`: an unanchored, case-sensitive regular expression and the action it names.
public struct Route: Sendable {
    public var match: String
    public var action: String
    private let regex: CompiledRegex

    init(match: String, action: String) throws {
        self.match = match
        self.action = action
        regex = CompiledRegex(try NSRegularExpression(pattern: match))
    }

    func matches(_ text: String) -> Bool {
        regex.value.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

// NSRegularExpression is immutable once built and documented as safe to share between threads.
private final class CompiledRegex: @unchecked Sendable {
    let value: NSRegularExpression
    init(_ value: NSRegularExpression) { self.value = value }
}
