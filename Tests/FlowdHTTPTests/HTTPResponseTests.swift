import Testing

@testable import FlowdHTTP

/// The bytes of the server's own `{"detail": …}` answers. They were written by a separate
/// escaper until FlowdJSON's took over; these pin what clients have always received.
@Suite("HTTP response bodies")
struct HTTPResponseTests {
    /// Quotes, backslash, the short-escaped controls, `\b`/`\f` as `\u00xx`, other controls,
    /// and `/`, DEL and non-ASCII left as they are.
    static let message = "a\"b\\c\n\r\t\u{08}\u{0C}\u{00}\u{1F}/\u{7F}é€😀"
    static let expected = #"{"detail":"a\"b\\c\n\r\t\u0008\u000c\u0000\u001f/"# + "\u{7F}é€😀\"}"

    @Test func detailAnswersKeepTheirEscaping() {
        let response = HTTPResponse.detail(400, Self.message)
        guard case .bytes(let body) = response.body else {
            Issue.record("a detail answer has a complete body")
            return
        }
        #expect(body == Array(Self.expected.utf8))
    }

    @Test func thrownErrorsAnswerTheSameBytes() {
        #expect(HTTPError(422, Self.message).body == Array(Self.expected.utf8))
        struct Refusal: HTTPResponseError {
            var status: Int { 409 }
            var detail: String { HTTPResponseTests.message }
        }
        #expect(Refusal().body == Array(Self.expected.utf8))
        #expect(HTTPError(Refusal()).body == Array(Self.expected.utf8))
    }
}
